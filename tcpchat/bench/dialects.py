"""How the load generator speaks to each kind of server (tcpchat, IRC), and the text of a
benchmark message: who sent it, its number and when, so that receivers can measure it."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tcpchat.bench.clients import BenchClient

JOIN_BATCH = 200  # clients connecting at once while a crowd joins
MESSAGE_PREFIX = "B"
# tcpchat's own encoding of a benchmark `message` (other servers may order fields otherwise).
_TCPCHAT_MESSAGE = re.compile(
    rb'\{"type":"message","seq":(\d+),"from":"([^"\\]*)","text":"B(\d+) (\d+) (\d+) '
)
_TCPCHAT_ACK = re.compile(rb'\{"type":"ack","id":(?:null|"([^"\\]*)"),"seq":(\d+)')
# A benchmark PRIVMSG, read without splitting the line (as tcpchat's have their fast path).
_IRC_MESSAGE = re.compile(rb":[^ ]+ PRIVMSG [^ ]+ :B(\d+) (\d+) (\d+) ")
_TCPCHAT_IGNORED = (b'{"type":"ack"', b'{"type":"joined"', b'{"type":"left"', b'{"type":"pong"')


class BenchError(Exception):
    """Why a benchmark could not run, in one sentence."""


# --- how to speak to each kind of server -------------------------------------------------------


class Dialect(Protocol):
    """One chat protocol, as the benchmark needs it: join, say, and recognise messages."""

    name: str
    ids: bool  # every `say` carries an id of its own (tcpchat: exactly once, as clients send)

    def hello(self, nick: str) -> bytes: ...
    def on_line(self, client: BenchClient, line: bytes) -> None: ...
    def say(self, text: str, request_id: str | None = None) -> bytes: ...
    def bye(self) -> bytes: ...


class TcpchatDialect:
    """PROTOCOL.md's JSON mode."""

    name = "tcpchat"

    def __init__(self, password: str | None = None, *, ids: bool = False) -> None:
        self.password = password
        self.ids = ids

    def hello(self, nick: str) -> bytes:
        hello: dict[str, Any] = {"type": "hello", "name": nick, "version": 1}
        if self.password is not None:
            hello["password"] = self.password
        return json.dumps(hello).encode() + b"\n"

    def on_line(self, client: BenchClient, line: bytes) -> None:
        fast = _TCPCHAT_MESSAGE.match(line)
        if fast is not None:  # tcpchat's own field order: no JSON parsing per delivery
            seq, _, sender, number, sent = fast.groups()
            client.on_message(int(sender), int(number), int(sent), int(seq))
            return
        ack = _TCPCHAT_ACK.match(line)
        if ack is not None:  # our own message's place in `seq`: the others' go on after it
            request_id, seq = ack.groups()
            client.on_ack(None if request_id is None else request_id.decode(), int(seq))
            return
        if not line.startswith(b"{") or line.startswith(_TCPCHAT_IGNORED):
            return  # the banner, and what the benchmark does not count
        try:
            event = json.loads(line)
        except ValueError:
            client.fail(f"the server sent a line that is not JSON: {line[:80]!r}")
            return
        kind = event.get("type")
        if kind == "message":
            parsed = _parse_text(str(event.get("text", "")))
            if parsed is not None:
                seq = event.get("seq")
                client.on_message(*parsed, seq if isinstance(seq, int) else None)
        elif kind == "welcome":
            client.on_joined()
        elif kind == "error":
            client.fail(f"the server refused: {event.get('message') or event.get('code')}")
        elif kind == "shutdown":
            client.fail(f"the server closed the connection: {event.get('message')}")

    def say(self, text: str, request_id: str | None = None) -> bytes:
        if request_id is None:
            return json.dumps({"type": "say", "text": text}).encode() + b"\n"
        return json.dumps({"type": "say", "text": text, "id": request_id}).encode() + b"\n"

    def bye(self) -> bytes:
        return b'{"type":"bye"}\n'


class IrcDialect:
    """RFC 1459/2812 client lines: NICK/USER, JOIN a channel, PRIVMSG to it."""

    name = "irc"
    ids = False  # IRC has no ids: nothing is acknowledged

    def __init__(self, channel: str = "#bench", password: str | None = None) -> None:
        self.channel = channel
        self.password = password

    def hello(self, nick: str) -> bytes:
        password = f"PASS {self.password}\r\n" if self.password else ""
        return f"{password}NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode()

    def on_line(self, client: BenchClient, line: bytes) -> None:
        fast = _IRC_MESSAGE.match(line)
        if fast is not None:
            sender, number, sent = fast.groups()
            client.on_message(int(sender), int(number), int(sent), None)
            return
        line = line.rstrip(b"\r")
        if line.startswith(b"PING"):
            client.write(b"PONG" + line[4:] + b"\r\n")
            return
        if not line.startswith(b":"):
            if line.startswith(b"ERROR"):
                client.fail(f"the server closed the connection: {line.decode(errors='replace')}")
            return
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return
        command = parts[1]
        if command == b"PRIVMSG" and len(parts) == 4:
            parsed = _parse_text(parts[3].partition(b":")[2].decode(errors="replace"))
            if parsed is not None:
                client.on_message(*parsed, None)
        elif command == b"001":  # registered: now join the channel
            client.write(f"JOIN {self.channel}\r\n".encode())
        elif command == b"366":  # end of the channel's names: we are in
            client.on_joined()
        elif command in (b"432", b"433", b"436", b"437", b"464", b"465", b"471", b"473", b"474"):
            client.fail(f"the server refused: {line.decode(errors='replace')}")

    def say(self, text: str, request_id: str | None = None) -> bytes:
        return f"PRIVMSG {self.channel} :{text}\r\n".encode()

    def bye(self) -> bytes:
        return b"QUIT :bench done\r\n"


def message_text(sender: int, number: int, size: int) -> str:
    """`B<sender> <number> <sent ns>` padded with `x` to `size` characters."""
    head = f"{MESSAGE_PREFIX}{sender} {number} {time.perf_counter_ns()} "
    return head + "x" * max(0, size - len(head))


def _parse_text(text: str) -> tuple[int, int, int] | None:
    if not text.startswith(MESSAGE_PREFIX):
        return None
    fields = text[1:].split(" ", 3)
    try:
        return int(fields[0]), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None
