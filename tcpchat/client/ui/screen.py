"""The interactive chat screen: prompt_toolkit, with events printed above the input line.

`prompt_async()` keeps the person's half-typed line, cursor and input history while events are
printed above it (`print_formatted_text` goes through `run_in_terminal` while the prompt runs).
Messages waiting for their `ack` are part of the prompt, just above the input line, until the
server confirms them; then they move into the scroll-back with "✓ delivered to N".
The network side runs as one task beside the prompt: it reads events, and after a lost connection
reconnects with backoff and rejoins with the same name.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application import get_app_or_none, get_app_session, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus
from prompt_toolkit.formatted_text import AnyFormattedText, FormattedText
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from tcpchat.client import recent
from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    ConnectionLost,
    JoinRefused,
    TlsRefused,
    TlsSettings,
    split_address,
)
from tcpchat.client.trust import NewCertificate
from tcpchat.client.ui.render import (
    Bar,
    Fragments,
    counted,
    fragments_text,
    mentions,
    render_event,
    render_notice,
    render_own,
    render_pending,
    render_problem,
    render_toolbar,
    render_welcome,
    screen_rows,
)
from tcpchat.defaults import DEFAULT_PORT
from tcpchat.protocol import (
    Ack,
    Banner,
    Bye,
    Dm,
    Error,
    ErrorCode,
    Invalid,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Nick,
    Private,
    Renamed,
    Say,
    Shutdown,
    Welcome,
    Who,
    fold_name,
    name_problem,
    normalize_name,
    plural_members,
    strip_unsafe,
    text_problem,
)

SECONDS = 1.0
ACK_PATIENCE = 10 * SECONDS  # after this an unconfirmed message says so
QUIT_WAIT = 5 * SECONDS  # how long /quit waits for the last confirmations
RECONNECT_FIRST = 1 * SECONDS
RECONNECT_MAX = 30 * SECONDS

COMMANDS = {  # command: (how to type it, what it does)
    "/help": ("/help", "show the commands"),
    "/who": ("/who", "list who is here"),
    "/nick": ("/nick NAME", "change your name"),
    "/msg": ("/msg NAME TEXT", "a private message"),
    "/quit": ("/quit", "leave the chat (also Ctrl-D, or Ctrl-C on an empty line)"),
}
PASSWORD_TRIES = 3
DM_WAIT = 30 * SECONDS  # how long a private message typed offline waits for its recipient

STYLE = Style.from_dict(
    {
        "time": "#888888",
        "earlier": "#888888 italic",
        "punct": "",
        "text": "",
        "mention": "bold reverse",
        "me": "bold underline",
        "private": "#d787ff",
        "private-text": "#d787ff",
        "notice": "#5f87af",
        "motd": "#5f87af bold",
        "problem": "#ff5f5f",
        "confirmed": "#5faf5f",
        "pending": "#888888 italic",
        "continued": "#888888",
        "prompt": "bold",
        "operator": "bg:#d7af00 #000000 bold",
        "name.c0": "#e06c75",
        "name.c1": "#98c379",
        "name.c2": "#e5c07b",
        "name.c3": "#61afef",
        "name.c4": "#c678dd",
        "name.c5": "#56b6c2",
        "name.c6": "#d19a66",
        "name.c7": "#be5046",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "toolbar.online": "bg:#303030 #87d787 bold",
        "toolbar.offline": "bg:#303030 #ff5f5f bold",
        "toolbar.count": "bg:#303030 #ffffff bold",
    }
)


class Removed(ChatError):
    """The chat ended without the person leaving: the server removed them (its words say how:
    the `shutdown` message), or no longer takes their password."""


@dataclass
class Outgoing:
    """A message the person typed, until the server confirms or refuses it."""

    id: str
    text: str
    to: str | None
    typed_at: float
    sent: bool = False
    resent_at: float | None = None  # sent again after a reconnect (typed while offline)
    waiting_for: str | None = None  # a private message waiting for this (folded) name to rejoin


def _write_rows(output: Output, rows: list[Fragments]) -> None:
    """Write rows made to fit the width with the terminal's own wrapping off, as prompt_toolkit
    draws its layout: a character the terminal draws wider than wcwidth said cuts its row at
    the edge rather than pushing the rest to column 0 of a row of its own."""
    depth = output.get_default_color_depth()
    output.reset_attributes()
    output.disable_autowrap()
    try:
        for row in rows:
            for style, text in row:
                output.set_attributes(STYLE.get_attrs_for_style_str(style), depth)
                output.write(text)
            output.reset_attributes()
            output.write("\r\n")
    finally:
        output.enable_autowrap()
        output.flush()


def _chat_keys() -> KeyBindings:
    """Ctrl-C clears a typed line, as in a shell; on an empty line it leaves the chat.

    Only while the input line has the focus: in a mode of its own (a Ctrl-R search, whose
    empty search line has the focus) Ctrl-C is that mode's, and only ends it.
    """
    keys = KeyBindings()

    @keys.add("c-c", filter=has_focus(DEFAULT_BUFFER))
    def _clear_or_leave(event: KeyPressEvent) -> None:
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset(append_to_history=True)
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return keys


def default_name() -> str:
    """The login name, if it is a valid chat name."""
    try:
        login = normalize_name(getpass.getuser())
    except Exception:  # getuser can fail in odd environments; the person types a name instead
        return ""
    return "" if name_problem(login) else login


class ChatCompleter(Completer):
    """Tab completes commands after `/`, and member names anywhere (recent speakers first)."""

    def __init__(self, screen: ChatScreen) -> None:
        self.screen = screen

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and " " not in before:
            for command, (_, meta) in COMMANDS.items():
                if command.startswith(before.lower()):
                    yield Completion(
                        command + " ", -len(before), display=command, display_meta=meta
                    )
            return
        word = document.get_word_before_cursor(WORD=True)
        if not word and not before.lower().startswith(("/msg ", "/nick ")):
            return
        folded = fold_name(word)
        # A name that starts the line addresses that person (`bob: `); elsewhere a space ends it.
        addressing = not document.current_line_before_cursor[: -len(word) or None].strip()
        separator = ": " if addressing and not before.startswith("/") else " "
        for name in self.screen.names_by_recency():
            if fold_name(name).startswith(folded) and fold_name(name) != fold_name(
                self.screen.name
            ):
                yield Completion(name + separator, -len(word), display=name)


class ChatScreen:
    """One person's chat: the prompt, the events above it, and the connection under it."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        connection: ChatConnection,
        welcome: Welcome,
        tls: TlsSettings | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.tls = tls  # every reconnection checks the certificate again
        self.connection: ChatConnection | None = connection
        self.name = welcome.name
        self.server = welcome.server
        self.max_text = welcome.max_text
        self.members = welcome.members
        self.names: set[str] = set(welcome.names)
        self.speakers: list[str] = []  # most recent first
        self.last_seq = 0
        self.status = "online"
        self.status_detail = ""  # while offline: when the next try is
        self.status_problem = ""  # while offline: why the last try failed
        # Why the chat ended without the person leaving (kicked, banned, idle too long, a password
        # no longer taken): then we do not reconnect, and `run` ends with it.
        self.removed: str | None = None
        self.pending: dict[str, Outgoing] = {}
        self.transcript: deque[str] = deque(maxlen=1000)
        self._ids = (str(n) for n in itertools.count(1))
        self._first_welcome = welcome
        self._settled = asyncio.Event()  # set whenever a pending message is settled
        self._tasks: set[asyncio.Task[None]] = set()
        self.session: PromptSession[str] = PromptSession(
            completer=ChatCompleter(self),
            key_bindings=_chat_keys(),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            style=STYLE,
            enable_history_search=False,
            erase_when_done=True,  # the line reappears above once confirmed
        )

    # --- what the screen shows -----------------------------------------------------------------

    def show(self, fragments: Fragments) -> None:
        """Print one line above the prompt (or plainly, between prompts)."""
        self.transcript.append(fragments_text(fragments))
        output = get_app_session().output

        def render() -> None:
            _write_rows(output, screen_rows(fragments, output.get_size().columns))

        app = get_app_or_none()  # as print_formatted_text: above a running prompt, or plainly
        if app is not None and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: run_in_terminal(render))
        else:
            render()

    def refresh(self) -> None:
        app = get_app_or_none()
        if app is not None and app.is_running:
            app.invalidate()

    def bell(self) -> None:
        app = get_app_or_none()
        if app is not None and app.is_running:
            app.output.bell()
            app.output.flush()

    def prompt_message(self) -> AnyFormattedText:
        """Unconfirmed messages, then the prompt itself."""
        lines: Fragments = []
        now = time.monotonic()
        for item in self.pending.values():
            if item.waiting_for:
                state = f"waiting for {strip_unsafe(item.to or '')} to come back"
            elif not item.sent:
                state = "waiting for the connection"
            elif now - item.typed_at < ACK_PATIENCE:
                state = "sending"
            else:
                state = f"not confirmed after {now - item.typed_at:.0f} s"
            lines += render_pending(item.text, to=item.to, state=state)
        return [*lines, ("class:prompt", f"{strip_unsafe(self.name)}› ")]

    def toolbar(self) -> AnyFormattedText:
        """The state, then where, who and how many: as much as the window's width holds."""
        bar = Bar(
            status=self.status,
            detail=self.status_detail,
            problem=self.status_problem,
            server=self.server,
            name=self.name,
            members=self.members,
            address=f"{self.host}:{self.port}",
        )
        return FormattedText(render_toolbar(bar, get_app_session().output.get_size().columns))

    def names_by_recency(self) -> list[str]:
        recent_first = [name for name in self.speakers if name in self.names]
        return recent_first + sorted(self.names - set(recent_first), key=fold_name)

    # --- events from the server ----------------------------------------------------------------

    def on_welcome(self, welcome: Welcome, *, rejoined: bool) -> None:
        self.name = welcome.name
        self.server = welcome.server
        self.max_text = welcome.max_text
        self.members = welcome.members
        self.names = set(welcome.names)
        history = welcome.history
        lines = render_welcome(welcome, history=history)
        if rejoined:
            newest = max((m.seq for m in history), default=0)
            if newest < self.last_seq:  # the server restarted: its seq began again
                self.last_seq = 0
            history = [m for m in history if m.seq > self.last_seq]
            lines = render_welcome(welcome, history=history)[1:]  # not the greeting again
            self.show(render_notice(f"Back online as {self.name}; {plural_members(self.members)}."))
            missed = history[0].seq - self.last_seq - 1 if history and self.last_seq else 0
            if missed > 0:
                self.show(
                    render_problem(
                        f"{counted(missed, 'message')} from while you were away are lost."
                    )
                )
            if history:
                self.show(render_notice(f"{counted(len(history), 'message')} while you were away:"))
        for line in lines:
            self.show(line)
        for message in history:
            self.last_seq = max(self.last_seq, message.seq)
        self.refresh()

    def on_event(self, event: object) -> None:
        """Update the state for one server event and show it."""
        self._on_event(event)
        self._settled.set()
        self.refresh()

    def _on_event(self, event: object) -> None:
        if isinstance(event, Ack):
            self._confirmed(event)
        elif isinstance(event, Error) and event.id in self.pending:
            item = self.pending[event.id]
            if self._may_wait_for_recipient(item, event):
                item.sent = False
                item.waiting_for = fold_name(item.to or "")
                self.show(
                    render_notice(
                        f"{item.to} is not back yet; your private message waits for them."
                    )
                )
            else:
                del self.pending[event.id]
                self.show(render_problem(f"not sent ({event.message}): {item.text[:80]}"))
        elif isinstance(event, (Banner, Welcome)):
            pass
        elif isinstance(event, Invalid):
            self.show(render_problem("the server sent a line that could not be read."))
        elif isinstance(event, Shutdown) and event.reason in (
            LeaveReason.KICKED,
            LeaveReason.TIMEOUT,
        ):
            # Removed: the chat ends here with this sentence, which `run` raises.
            self.removed = strip_unsafe(event.message).strip() or "the server removed you."
            self.status = "removed"
        else:
            self._track(event)
            fragments = render_event(event, self.name)
            if fragments:
                self.show(fragments)

    def _may_wait_for_recipient(self, item: Outgoing, error: Error) -> bool:
        """A private message typed offline, refused just after we rejoined: its recipient has
        probably not rejoined yet either, so it waits a little instead of failing."""
        return (
            error.code is ErrorCode.NO_SUCH_MEMBER
            and item.to is not None
            and item.resent_at is not None
            and time.monotonic() - item.resent_at < DM_WAIT
        )

    async def _send_to_returning(self, name: str) -> None:
        """Send the private messages that waited for `name` to rejoin."""
        for item in list(self.pending.values()):
            if item.waiting_for == fold_name(name):
                item.waiting_for = None
                await self._send_outgoing(item)

    def _track(self, event: object) -> None:
        if isinstance(event, Message):
            self.last_seq = max(self.last_seq, event.seq)
            self._spoke(event.sender)
            if mentions(event.text, self.name):
                self.bell()
        elif isinstance(event, Private):
            self._spoke(event.sender)
            self.bell()
        elif isinstance(event, (Joined, Left, Members)):
            self.members = event.members
            if isinstance(event, Joined):
                self.names.add(event.name)
                if any(item.waiting_for for item in self.pending.values()):
                    self._background(self._send_to_returning(event.name))
            elif isinstance(event, Left):
                self.names.discard(event.name)
            else:
                self.names = set(event.names)
        elif isinstance(event, Renamed):
            self.names.discard(event.old)
            self.names.add(event.new)
            if event.old in self.speakers:
                self.speakers[self.speakers.index(event.old)] = event.new
            if fold_name(event.old) == fold_name(self.name):
                self.name = event.new
        elif isinstance(event, Shutdown):
            self.status = "server shutting down"

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spoke(self, name: str) -> None:
        if name in self.speakers:
            self.speakers.remove(name)
        self.speakers.insert(0, name)
        del self.speakers[20:]

    def _confirmed(self, ack: Ack) -> None:
        if ack.seq is not None:
            self.last_seq = max(self.last_seq, ack.seq)
        item = self.pending.pop(ack.id, None) if ack.id is not None else None
        if item is not None:
            self.show(render_own(item.text, ack.ts, self.name, to=item.to, delivered=ack.delivered))

    # --- what the person types -----------------------------------------------------------------

    async def handle_input(self, typed: str) -> bool:
        """Act on one entered line; False means leave."""
        text = typed.replace("\r\n", "\n").replace("\r", "\n").rstrip()
        if not text.strip():
            return True
        if text.startswith("/") and not text.startswith("//"):
            return await self._command(text)
        await self.queue(text[1:] if text.startswith("//") else text)
        return True

    async def _command(self, text: str) -> bool:
        command, _, rest = text.partition(" ")
        command = command.lower()
        rest = rest.strip()
        if command == "/quit":
            return False
        if command == "/help":
            for usage, meta in COMMANDS.values():
                self.show(render_notice(f"{usage:<15} {meta}"))
            self.show(render_notice("A line starting with // sends a message that starts with /."))
        elif command == "/who":
            if not await self._send(Who()):
                names = ", ".join(sorted(self.names, key=fold_name))
                self.show(render_notice(f"offline; last known: {names}"))
        elif command == "/nick":
            if not rest:
                self.show(render_problem("usage: /nick NAME"))
            elif not await self._send(Nick(name=rest)):
                self._nick_offline(rest)
        elif command == "/msg":
            to, _, message = rest.partition(" ")
            if not to or not message.strip():
                self.show(render_problem("usage: /msg NAME TEXT"))
            else:
                await self.queue(message, to=to)
        else:
            self.show(render_problem(f"unknown command {command}; /help lists them."))
        return True

    def _nick_offline(self, wanted: str) -> None:
        """Offline, /nick chooses the name the next rejoin uses (the old one may be taken)."""
        name = normalize_name(wanted)
        problem = name_problem(name)
        if problem:
            self.show(render_problem(problem))
        else:
            self.name = name
            self.show(render_notice(f"You will rejoin as {name}."))
            self.refresh()

    async def queue(self, text: str, to: str | None = None) -> None:
        """Check a message, show it as pending and send it (or keep it until reconnected)."""
        problem = text_problem(text, self.max_text)
        if problem:
            self.show(render_problem(f"{problem[1]}; ↑ brings the line back to edit"))
            return
        item = Outgoing(id=next(self._ids), text=text, to=to, typed_at=time.monotonic())
        self.pending[item.id] = item
        await self._send_outgoing(item)
        self.refresh()

    async def _send_outgoing(self, item: Outgoing, via: ChatConnection | None = None) -> None:
        event = (
            Dm(to=item.to, text=item.text, id=item.id)
            if item.to
            else Say(text=item.text, id=item.id)
        )
        item.typed_at = time.monotonic()
        item.sent = await self._send(event, via)

    async def _send(
        self, event: Say | Dm | Nick | Who | Bye, via: ChatConnection | None = None
    ) -> bool:
        """Send if online (or on `via`); False when nothing was handed to a connection.

        True also when the connection broke while the bytes were on their way: they may have
        arrived, so the message waits for its ack and is reported if none comes, never resent.
        """
        connection = via or (self.connection if self.status == "online" else None)
        if connection is None or connection.is_closed:
            return False
        try:
            await connection.send(event)
        except ConnectionLost:
            pass
        return True

    # --- the connection ------------------------------------------------------------------------

    async def network(self) -> None:
        """Read events; after a loss, reconnect and rejoin, forever (until cancelled)."""
        while True:
            connection = self.connection
            assert connection is not None
            keepalive = asyncio.ensure_future(connection.keepalive())
            try:
                while True:
                    self.on_event(await connection.next_event())
            except ConnectionLost as lost:
                reason = str(lost)
            finally:
                keepalive.cancel()
            connection.abort()  # it is gone; free the socket now, not at garbage collection
            if self.removed is not None:
                self._stop_after_removal()
                return
            self._lost(reason)
            await self._reconnect()
            if self.removed is not None:
                return

    def _stop_after_removal(self) -> None:
        """Removed: reconnecting would undo the operator's decision (or lock us out), so stop."""
        self.connection = None
        self.status = "removed"
        app = self.session.app
        if app.is_running and not app.future.done():  # type: ignore[union-attr]
            app.exit(exception=EOFError())

    def _lost(self, reason: str) -> None:
        self.connection = None
        self.status = "offline"
        self.show(render_problem(f"{reason[0].upper()}{reason[1:]} Reconnecting…"))
        for key, item in list(self.pending.items()):
            if item.sent:  # the server may or may not have taken it: say so, never resend twice
                del self.pending[key]
                self.show(
                    render_problem(
                        f"not confirmed before the connection was lost; it may not have arrived: {item.text[:80]}"
                    )
                )
        self._settled.set()
        self.refresh()

    async def _reconnect(self) -> None:
        """Try again with growing, jittered delays until rejoined under the same name."""
        delay = RECONNECT_FIRST
        problem = ""
        told = ""  # the name we last said was refused
        warned = ""  # the certificate problem we last showed
        while True:
            wait_until = time.monotonic() + delay * random.uniform(1.0, 1.25)
            while (left := wait_until - time.monotonic()) > 0:
                self.status = "offline"
                self.status_detail = f"retrying in {math.ceil(left)} s"
                self.status_problem = problem
                self.refresh()
                await asyncio.sleep(min(1.0, left))
            self.status = "connecting…"
            self.status_detail = self.status_problem = ""
            self.refresh()
            try:
                connection, welcome = await self._rejoin()
            except ChatError as error:
                # A refused rejoin (name taken, server full) is worth a word; a refused
                # connection is what "offline" already says.  A refused certificate is
                # worth the whole warning, once.
                refused = isinstance(error, JoinRefused)
                if isinstance(error, JoinRefused) and error.error.code is ErrorCode.AUTH_FAILED:
                    # Retrying a password the server no longer takes would only lock this
                    # address out (the server counts wrong passwords), so stop here.
                    self.removed = (
                        f"the server no longer takes your password ({str(error).rstrip('.')}); "
                        "join again with the new one."
                    )
                    self._stop_after_removal()
                    return
                door = str(error).startswith("the server refused the connection")
                problem = str(error).rstrip(".") if refused or door else ""
                if door and told != str(error):
                    told = str(error)
                    self.show(render_problem(f"{told[0].upper()}{told[1:]}"))
                if isinstance(error, TlsRefused):
                    problem = "TLS refused"
                    if warned != str(error):
                        warned = str(error)
                        self.show(render_problem(f"{warned[0].upper()}{warned[1:]}"))
                if isinstance(error, JoinRefused) and error.can_retry and told != self.name:
                    told = self.name
                    self.show(render_problem(f"{error} Type /nick NAME to rejoin as someone else."))
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self.connection = connection
            self.on_welcome(welcome, rejoined=True)
            # What was typed offline goes out in the order typed, lines typed meanwhile
            # included, before the state says online (a new line could overtake an old one).
            while item := next((i for i in self.pending.values() if not i.sent), None):
                item.resent_at = time.monotonic()
                await self._send_outgoing(item, connection)
                if not item.sent:
                    break  # lost again: the reader notices and we come back here
            self.status = "online"
            self.refresh()
            return

    async def _rejoin(self) -> tuple[ChatConnection, Welcome]:
        connection = await ChatConnection.open(self.host, self.port, tls=self.tls)
        if connection.new_pin is not None:
            self.show(render_notice(connection.new_pin.notice()))
        try:
            return connection, await connection.join(self.name, self.password)
        except BaseException:
            await connection.close()
            raise

    async def tick(self) -> None:
        """Redraw once a second while something is waiting, so its state stays true."""
        while True:
            await asyncio.sleep(1.0)
            for key, item in list(self.pending.items()):
                waited = time.monotonic() - (item.resent_at or item.typed_at)
                if item.waiting_for and waited > DM_WAIT:
                    del self.pending[key]
                    self.show(
                        render_problem(f"not sent ({item.to} did not come back): {item.text[:80]}")
                    )
            if self.pending:
                self.refresh()

    async def _await_confirmations(self) -> None:
        """Give the server up to QUIT_WAIT to confirm what was sent (the reader must be running)."""
        if self.connection is None:
            return  # offline or removed: nothing can be confirmed any more
        deadline = time.monotonic() + QUIT_WAIT
        waiting = sum(item.sent for item in self.pending.values())
        if waiting:
            self.show(render_notice(
                f"Waiting up to {QUIT_WAIT:g} s for {counted(waiting, 'message')} to be confirmed…"
            ))  # fmt: skip
        while any(item.sent for item in self.pending.values()):
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return

    async def leave(self) -> None:
        """Report what was never confirmed, say `bye`, close."""
        for item in self.pending.values():
            why = "not confirmed" if item.sent else "not sent (offline)"
            self.show(render_problem(f"{why}: {item.text[:80]}"))
        self.pending.clear()
        if self.connection is not None:
            await self._send(Bye())
            await self.connection.close()
        if self.removed is None:
            self.show(render_notice("You left the chat."))

    async def run(self) -> None:
        """The chat until /quit, Ctrl-D or Ctrl-C; Removed when it ended otherwise (it says why,
        in one sentence, and the command exits 1)."""
        self.on_welcome(self._first_welcome, rejoined=False)
        network = asyncio.ensure_future(self.network())
        ticker = asyncio.ensure_future(self.tick())
        try:
            with patch_stdout():
                while True:
                    try:
                        typed = await self.session.prompt_async(self.prompt_message)
                    except (EOFError, KeyboardInterrupt):
                        break
                    if not await self.handle_input(typed):
                        break
                await self._await_confirmations()  # the network task still reads the acks
                network.cancel()
                ticker.cancel()
                await asyncio.gather(network, ticker, return_exceptions=True)
                await self.leave()
            if self.removed is not None:
                raise Removed(self.removed)
        finally:
            network.cancel()
            ticker.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(network, ticker, *self._tasks, return_exceptions=True)


async def _ask(
    session: PromptSession[str], question: str, default: str = "", *, secret: bool = False
) -> str:
    """The answer to `question`; Enter alone takes `default`, shown in brackets (not typed in
    for the person, where what they type would be added to it)."""
    offer = f" [{default}]" if default else ""
    try:
        answer = await session.prompt_async(f"{question}{offer}: ", is_password=secret)
    except EOFError:
        raise KeyboardInterrupt from None  # the person gave up: leave quietly, as Ctrl-C does
    return answer.strip() or default


async def _open(host: str, port: int, tls: TlsSettings | None) -> ChatConnection:
    """Connect, telling the person when a certificate was trusted on first use."""
    connection = await ChatConnection.open(host, port, tls=tls)
    if connection.new_pin is not None:
        notice = render_notice(connection.new_pin.notice())
        print_formatted_text(FormattedText(notice), style=STYLE)
    return connection


async def _trust_certificate(session: PromptSession[str], certificate: NewCertificate) -> bool:
    """Ask, as ssh does for a new host key: its fingerprint, then `yes` to trust it."""
    print_formatted_text(FormattedText(render_notice(certificate.question())), style=STYLE)
    return (await _ask(session, "Trust it and join (yes/no)")).lower() == "yes"


async def _ask_for_server(
    session: PromptSession[str], port: int, tls: TlsSettings | None
) -> tuple[str, int, ChatConnection]:
    """Ask for the server (`HOST` or `HOST:PORT`) until one answers: one that cannot be read,
    found or reached is asked for again with the reason.

    A certificate refused is no typo: that ends here, as it would for a host given.
    """
    offer = (recent.recent_hosts() or ["127.0.0.1"])[0]
    while True:
        typed = await _ask(session, "Server host", offer)
        if not typed:
            continue
        try:
            host, written = split_address(typed)
        except ValueError as problem:
            _say_problem(str(problem))
            continue
        try:
            return host, written or port, await _open(host, written or port, tls)
        except TlsRefused:
            raise
        except ChatError as problem:
            _say_problem(str(problem))


def _say_problem(sentence: str) -> None:
    """A problem before the chat screen starts, as a sentence of its own."""
    text = f"{sentence[:1].upper()}{sentence[1:]}"
    print_formatted_text(FormattedText(render_problem(text)), style=STYLE)


def _written_address(host: str, port: int) -> str:
    """The server as the host prompt and shell completion offer it next time."""
    if port == DEFAULT_PORT:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _name_to_offer(refused: set[str]) -> str:
    """The name prompt's default: the latest name used, else the login name, passing over names
    the server just refused (offering one again would only be refused again); else nothing."""
    candidates = [*recent.recent_names(), default_name()]
    return next((name for name in candidates if name and fold_name(name) not in refused), "")


async def run_interactive(
    host: str | None,
    port: int,
    name: str | None,
    password: str | None,
    tls: TlsSettings | None = None,
) -> None:
    """Ask for what is missing, connect, join (asking again for a taken name), then chat."""
    asker: PromptSession[str] = PromptSession()
    # Only the first connection may ask about a new certificate: the chat screen's reconnects
    # cannot stop to ask, and by then the certificate is pinned.
    asking = None if tls is None else replace(tls, ask=partial(_trust_certificate, asker))
    if host:
        connection = await _open(host, port, asking)
    else:
        host, port, connection = await _ask_for_server(asker, port, asking)
    password_tries = 0
    refused_names: set[str] = set()
    while True:
        while not name:
            name = await _ask(asker, "Your name", _name_to_offer(refused_names))
        try:
            welcome = await connection.join(name, password)
            break
        except JoinRefused as refused:
            code = refused.error.code
            if refused.can_retry:
                print_formatted_text(FormattedText(render_problem(str(refused))), style=STYLE)
                refused_names.add(fold_name(name))
                name = None
                continue
            await connection.close()
            if code is ErrorCode.AUTH_FAILED and password_tries < PASSWORD_TRIES:
                if password is not None:
                    print_formatted_text(FormattedText(render_problem(str(refused))), style=STYLE)
                password_tries += 1
                password = await _ask(asker, "This server needs a password", secret=True)
                connection = await _open(host, port, asking)
                continue
            raise ChatError(f"could not join: {refused}") from None
        except BaseException:
            await connection.close()
            raise
    recent.remember(_written_address(host, port), welcome.name)
    await ChatScreen(host, port, password, connection, welcome, tls).run()
