"""`tcpchat join` for scripts and bots: standard input is not a terminal (PROTOCOL.md, last section).

Each input line is sent as a message; each event is printed as one text line (or, with `--json`,
as the server's JSON line).  It ends with 0 once input is over and every message was
acknowledged, and raises `ChatError` (exit 1, the reason on stderr) when it could not join, a
message was refused, or the server was lost.
"""

from __future__ import annotations

import asyncio
import sys
from typing import BinaryIO, TextIO

from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    ConnectionLost,
    JoinRefused,
    TlsSettings,
)
from tcpchat.protocol import (
    DEFAULT_MAX_TEXT,
    Ack,
    Banner,
    Bye,
    Error,
    Invalid,
    Pong,
    Say,
    Shutdown,
    encode_json,
    is_forbidden_char,
    render_plain,
    strip_unsafe,
    text_problem,
)
from tcpchat.stdin import start_feeding


def escape_unsafe_json(line: str) -> str:
    """A JSON line with every character strip_unsafe would replace written as a `\\uXXXX` escape.

    The server's JSON keeps non-ASCII raw, so C1 controls and bidi overrides from a hostile
    server would reach the terminal of whoever watches the output; escaped, they cannot, and the
    line still decodes to the very same strings.  Outside strings JSON is ASCII, so every such
    character is inside a string, where an escape is valid.
    """
    return "".join(f"\\u{ord(char):04x}" if is_forbidden_char(char) else char for char in line)


class ScriptSession:
    """Sends input lines as `say` with ids and counts the acks still owed."""

    def __init__(
        self, connection: ChatConnection, *, as_json: bool, out: TextIO, err: TextIO
    ) -> None:
        self.connection = connection
        self.as_json = as_json
        self.out = out
        self.err = err
        self.pending: dict[str, str] = {}
        self.refused = 0
        self.input_over = False
        self.finished = asyncio.Event()

    def show(self, event: object) -> None:
        if isinstance(event, (Banner, Invalid)):
            return
        if self.as_json:
            text = escape_unsafe_json(encode_json(event).decode())  # type: ignore[arg-type]
        else:
            text = strip_unsafe(render_plain(event, hints=False).decode())  # type: ignore[arg-type]
        if text:
            try:
                self.out.write(text)
                self.out.flush()
            except (BrokenPipeError, ValueError):  # `| head -1` has read all it wants
                raise ChatError("standard output was closed.") from None

    def _check_finished(self) -> None:
        if self.input_over and not self.pending:
            self.finished.set()

    async def read_events(self) -> None:
        """Print events and settle acks until the connection ends (raises ConnectionLost)."""
        while True:
            event = await self.connection.next_event()
            if isinstance(event, Ack) and event.id is not None:
                self.pending.pop(event.id, None)
            elif isinstance(event, Error) and event.id in self.pending:
                self.refuse(self.pending.pop(event.id), event.message)
            elif isinstance(event, Error) and event.id is None and self.pending:
                # A line the server could not even parse (too long) has no id; it answers each
                # connection's lines in order, so it is the oldest one still owed an answer.
                self.refuse(self.pending.pop(next(iter(self.pending))), event.message)
            if not isinstance(event, Pong):
                self.show(event)
            if isinstance(event, Shutdown):
                raise ConnectionLost(f"the server shut down: {event.message}")
            self._check_finished()

    def refuse(self, text: str, reason: str) -> None:
        self.refused += 1
        self.err.write(f"tcpchat: not sent ({strip_unsafe(reason)}): {strip_unsafe(text)[:80]}\n")
        self.err.flush()

    async def send_input(self, lines: asyncio.Queue[bytes | None]) -> None:
        count = 0
        while (raw := await lines.get()) is not None:
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                continue  # a blank line is no message; the server would refuse it
            welcome = self.connection.welcome
            problem = text_problem(text, welcome.max_text if welcome else DEFAULT_MAX_TEXT)
            if problem:  # the server would refuse it: say so now, and send the rest
                self.refuse(text, problem[1])
                continue
            count += 1
            request_id = str(count)
            self.pending[request_id] = text
            await self.connection.send(Say(text=text, id=request_id))
        self.input_over = True
        self._check_finished()


async def run_script(
    host: str,
    port: int,
    name: str,
    password: str | None = None,
    *,
    as_json: bool = False,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    tls: TlsSettings | None = None,
) -> None:
    """Join, send every input line, wait for every ack, leave. Raises ChatError on failure."""
    connection = await ChatConnection.open(host, port, tls=tls)
    try:
        if connection.new_pin is not None:  # on stderr: stdout may be a JSON consumer
            errors = err or sys.stderr
            errors.write(f"tcpchat: {connection.new_pin.notice()}\n")
            errors.flush()
        try:
            welcome = await connection.join(name, password)
        except JoinRefused as refused:
            raise ChatError(f"could not join: {refused}") from None
        session = ScriptSession(
            connection, as_json=as_json, out=out or sys.stdout, err=err or sys.stderr
        )
        session.show(welcome)
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        start_feeding(stdin or sys.stdin.buffer, loop, lines.put_nowait)
        reader = asyncio.ensure_future(session.read_events())
        sender = asyncio.ensure_future(session.send_input(lines))
        keepalive = asyncio.ensure_future(connection.keepalive())
        finished = asyncio.ensure_future(session.finished.wait())
        waiting = {reader, sender, finished}
        try:
            while finished in waiting and reader in waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if sender in done and sender.exception():
                    break  # the send failed: the reader says why, or the fallback below does
        finally:
            for task in (reader, sender, keepalive, finished):
                task.cancel()
            await asyncio.gather(reader, sender, keepalive, finished, return_exceptions=True)
        if not session.finished.is_set():
            error = reader.exception() if reader.done() and not reader.cancelled() else None
            if isinstance(error, ChatError):
                raise error
            raise ConnectionLost("lost the connection to the server.")
        try:
            await connection.send(Bye())
        except ConnectionLost:
            pass
        if session.refused:
            raise ChatError(
                f"{session.refused} message{'s were' if session.refused != 1 else ' was'} "
                "refused by the server."
            )
    finally:
        await connection.close()
