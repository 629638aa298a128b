"""The interactive chat screen: prompt_toolkit, with events printed above the input line.

`prompt_async()` keeps the person's half-typed line, cursor and input history while events are
printed above it (`print_formatted_text` goes through `run_in_terminal` while the prompt runs).
Messages waiting for their `ack` are part of the prompt, just above the input line, until the
server confirms them; then they move into the scroll-back with "✓ delivered to N".
The network side runs as one task beside the prompt: it reads events, and after a lost connection
reconnects with backoff (`reconnect`) and rejoins with the same name, resuming after the last
message seen.  What the session is and what each event does to it is `state`, which needs
neither this screen nor a connection; typed lines are read by `commands`, and Tab completes
with `completer`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, get_app_session, run_in_terminal
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus
from prompt_toolkit.formatted_text import AnyFormattedText, FormattedText
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent, merge_key_bindings
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import DynamicStyle

from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    ConnectionLost,
    TlsSettings,
)
from tcpchat.client.session_log import SessionLog, open_log
from tcpchat.client.settings import Settings, SettingsError
from tcpchat.client.ui.asking import join
from tcpchat.client.ui.commands import HISTORY_PAGE, Problem, SetRequest, help_lines, parse_typed
from tcpchat.client.ui.completer import ChatCompleter
from tcpchat.client.ui.input_line import InputLine
from tcpchat.client.ui.layout import colour_depth, screen_style, write_rows
from tcpchat.client.ui.local_commands import Local
from tcpchat.client.ui.notify import Attention
from tcpchat.client.ui.personal import Personal
from tcpchat.client.ui.reconnect import Retries
from tcpchat.client.ui.render import (
    STYLE,
    Fragments,
    fragments_text,
    render_notice,
    render_problem,
    render_toolbar,
    screen_rows,
)
from tcpchat.client.ui.scrollback import Scrollback
from tcpchat.client.ui.state import ChatState, Outcome, PendingMessage
from tcpchat.defaults import SECONDS
from tcpchat.protocol import (
    Bye,
    Dm,
    HelpRequest,
    HistoryRequest,
    Nick,
    Say,
    SearchRequest,
    Welcome,
    Who,
)
from tcpchat.words import counted

QUIT_WAIT = 5 * SECONDS  # how long /quit waits for the last confirmations


class Removed(ChatError):
    """The chat ended without the person leaving: the server removed them (its words say how:
    the `shutdown` message), or no longer takes their password."""


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


class ChatScreen:
    """One person's chat: the prompt, the events above it, and the connection under it.

    What the session is (members, names, unconfirmed messages, the link's state) is `state`;
    this class shows what it says to show and does the waiting and the network work.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        connection: ChatConnection,
        welcome: Welcome,
        tls: TlsSettings | None = None,
        settings: Settings | None = None,
        log: SessionLog | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.tls = tls  # every reconnection checks the certificate again
        self.connection: ChatConnection | None = connection
        self.settings = settings or Settings()  # shared with the state: /set changes both
        self.state = ChatState(welcome, settings=self.settings)
        self.attention = Attention(self.settings, lambda: self.state.server)
        self.transcript: deque[str] = deque(maxlen=1000)
        self.scrollback = Scrollback(log)  # what the screen showed, to read back and keep
        self.personal = Personal()
        self.input = InputLine(self.show, self.state, self.scrollback, self.personal)
        self._first_welcome = welcome
        self._settled = asyncio.Event()  # set whenever a pending message is settled
        self._tasks: set[asyncio.Task[None]] = set()
        self.session: PromptSession[str] = PromptSession(
            completer=ChatCompleter(self.state),
            key_bindings=merge_key_bindings(
                [_chat_keys(), self.input.keys(), self.attention.key_bindings()]
            ),
            rprompt=self.input.beside,
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            style=DynamicStyle(lambda: screen_style(STYLE, self.session.app.color_depth)),
            color_depth=self.colour_depth(),
            enable_history_search=False,
            erase_when_done=True,  # the line reappears above once confirmed
        )

    # --- what the screen shows -----------------------------------------------------------------

    def show(self, fragments: Fragments) -> None:
        """Print one line above the prompt (or plainly, between prompts)."""
        self.transcript.append(fragments_text(fragments))
        self.scrollback.add(fragments)
        output = get_app_session().output

        def render() -> None:
            rows = screen_rows(fragments, output.get_size().columns)
            depth = self.session.app.color_depth
            write_rows(output, rows, screen_style(STYLE, depth), depth)

        if self.input.held(render):
            return
        app = get_app_or_none()  # as print_formatted_text: above a running prompt, or plainly
        if app is not None and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: run_in_terminal(render))
        else:
            render()

    def show_all(self, lines: Iterable[Fragments]) -> None:
        for line in lines:
            self.show(line)

    def colour_depth(self) -> ColorDepth | None:
        """The colours the settings ask for (None: as many as the terminal says it has)."""
        return colour_depth(self.settings.colours)

    def refresh(self) -> None:
        app = get_app_or_none()
        if app is not None and app.is_running:
            app.invalidate()

    def prompt_message(self) -> AnyFormattedText:
        """Unconfirmed messages, then the prompt itself."""
        return FormattedText(self.state.prompt())

    def toolbar(self) -> AnyFormattedText:
        """The state, then where, who and how many: as much as the window's width holds."""
        bar = self.state.bar(f"{self.host}:{self.port}")
        return FormattedText(render_toolbar(bar, get_app_session().output.get_size().columns))

    # --- events from the server ----------------------------------------------------------------

    def on_welcome(self, welcome: Welcome, *, rejoined: bool) -> None:
        self.show_all(self.state.welcomed(welcome, rejoined=rejoined))
        self.refresh()

    def on_event(self, event: object) -> None:
        """Update the state for one server event and show it (unless its sender is ignored)."""
        outcome, replies = self.personal.receive(event, self.state.receive(event))
        self._act(outcome)
        for to, text in replies:
            self._background(self.queue(text, to=to))
        self._settled.set()
        self.refresh()

    def _act(self, outcome: Outcome) -> None:
        self.show_all([*self.attention.react(outcome.heard, outcome.bell), *outcome.lines])
        if outcome.send:
            self._background(self._send_all(outcome.send))

    async def _send_all(self, items: list[PendingMessage]) -> None:
        for item in items:
            await self._send_pending(item)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what the person types -----------------------------------------------------------------

    async def handle_input(self, typed: str) -> bool:
        """Act on one entered line; False means leave."""
        command = parse_typed(typed)
        if self.input.ask_first(typed, command):
            return True
        if isinstance(command, Bye):
            return False
        if isinstance(command, Local):
            going_on = await self.personal.act(command, self)
            self.attention.declare(self.personal.away is not None)
            return going_on
        if isinstance(command, HelpRequest):
            self.show_all(render_notice(line) for line in help_lines())
        elif isinstance(command, Who):
            if not await self._send(command):
                self.show_all(self.state.who_offline())
        elif isinstance(command, Nick):
            if not await self._send(command):
                self.show_all(self.state.nick_offline(command.name))
                self.refresh()
        elif isinstance(command, Dm):
            await self.queue(command.text, to=command.to)
        elif isinstance(command, Say):
            await self.queue(command.text, me=command.me)
        elif isinstance(command, (HistoryRequest, SearchRequest)):
            await self._ask(command)
        elif isinstance(command, SetRequest):
            self.show_all(self._set(command))
        elif isinstance(command, Problem):
            self.show(render_problem(command.sentence))
        return True

    def _set(self, request: SetRequest) -> list[Fragments]:
        """/set: the settings, one of them, or one changed for this session."""
        try:
            if not request.value:
                return [render_notice(line) for line in self.settings.lines(request.key)]
            said = self.settings.change(request.key, request.value)
        except SettingsError as error:
            return [render_problem(str(error))]
        self.session.color_depth = self.colour_depth()
        self.refresh()
        return [render_notice(said)]

    async def _ask(self, command: HistoryRequest | SearchRequest) -> None:
        """/history or /search: the answer is shown when it comes (`state.receive`)."""
        if isinstance(command, HistoryRequest):
            request: HistoryRequest | SearchRequest = self.state.history_request(
                command.limit or HISTORY_PAGE
            )
        else:
            request = self.state.search_request(command.text)
        if not await self._send(request):
            self.show(render_problem("offline; /history and /search work once back online."))

    async def queue(self, text: str, to: str | None = None, *, me: bool = False) -> None:
        """Check a message, show it as pending and send it (or keep it until reconnected); one
        longer than the server takes goes as several, broken between words."""
        for piece in self.input.pieces(text):
            outcome = self.state.queue(piece, to, me=me)
            self.show_all(outcome.lines)
            for item in outcome.send:
                await self._send_pending(item)
        self.refresh()

    async def _send_pending(self, item: PendingMessage, via: ChatConnection | None = None) -> None:
        item.sent = await self._send(self.state.sending(item), via)

    async def _send(
        self,
        event: Say | Dm | Nick | Who | Bye | HistoryRequest | SearchRequest,
        via: ChatConnection | None = None,
    ) -> bool:
        """Send if online (or on `via`); False when nothing was handed to a connection.

        True also when the connection broke while the bytes were on their way: they may have
        arrived, so the message waits for its ack; after a rejoin the state says whether it is
        resent with its id (delivered once) or reported as in doubt.
        """
        connection = via or (self.connection if self.state.status == "online" else None)
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
            if self.state.removed is not None:
                self._stop_after_removal()
                return
            self.connection = None
            self.show_all(self.state.lost(reason))
            self._settled.set()
            self.refresh()
            await self._reconnect()
            if self.state.removed is not None:
                return

    def _stop_after_removal(self) -> None:
        """Removed: reconnecting would undo the operator's decision (or lock us out), so stop."""
        self.connection = None
        app = self.session.app
        if app.is_running and not app.future.done():  # type: ignore[union-attr]
            app.exit(exception=EOFError())

    async def _reconnect(self) -> None:
        """Try again with growing, jittered delays until rejoined under the same name."""
        retries = Retries()
        problem = ""
        while True:
            wait_until = time.monotonic() + retries.wait()
            while (left := wait_until - time.monotonic()) > 0:
                self.state.retrying(left, problem)
                self.refresh()
                await asyncio.sleep(min(1.0, left))
            self.state.connecting()
            self.refresh()
            try:
                connection, welcome = await self._rejoin()
            except ChatError as error:
                failure = retries.failed(error, self.state.name)
                if failure.password_refused is not None:
                    self.state.removed_by_password(failure.password_refused)
                    self._stop_after_removal()
                    return
                self.show_all(render_problem(sentence) for sentence in failure.said)
                problem = failure.problem
                continue
            self.connection = connection
            self.on_welcome(welcome, rejoined=True)
            # What was typed offline goes out in the order typed, lines typed meanwhile
            # included, before the state says online (a new line could overtake an old one).
            while item := self.state.next_unsent():
                await self._send_pending(item, connection)
                if not item.sent:
                    break  # lost again: the reader notices and we come back here
            self.state.online()
            self.refresh()
            return

    async def _rejoin(self) -> tuple[ChatConnection, Welcome]:
        connection = await ChatConnection.open(self.host, self.port, tls=self.tls)
        if connection.new_pin is not None:
            self.show(render_notice(connection.new_pin.notice()))
        try:
            since, token = self.state.resume()
            welcome = await connection.join(
                self.state.name, self.password, since=since, token=token
            )
            return connection, welcome
        except BaseException:
            await connection.close()
            raise

    async def tick(self) -> None:
        """Redraw once a second while something is waiting, so its state stays true."""
        while True:
            await asyncio.sleep(1.0)
            self.show_all(self.state.expire_waiting())
            if self.state.pending:
                self.refresh()

    async def _await_confirmations(self) -> None:
        """Give the server up to QUIT_WAIT to confirm what was sent (the reader must be running)."""
        if self.connection is None:
            return  # offline or removed: nothing can be confirmed any more
        deadline = time.monotonic() + QUIT_WAIT
        waiting = self.state.unconfirmed
        if waiting:
            self.show(render_notice(
                f"Waiting up to {QUIT_WAIT:g} s for {counted(waiting, 'message')} to be confirmed…"
            ))  # fmt: skip
        while self.state.unconfirmed:
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return

    async def leave(self) -> None:
        """Report what was never confirmed, say `bye`, close."""
        self.show_all(self.state.leaving())
        if self.connection is not None:
            await self._send(Bye())
            await self.connection.close()
        if self.state.removed is None:
            self.show(render_notice("You left the chat."))

    async def run(self) -> None:
        """The chat until /quit, Ctrl-D or Ctrl-C; Removed when it ended otherwise (it says why,
        in one sentence, and the command exits 1)."""
        self.on_welcome(self._first_welcome, rejoined=False)
        network = asyncio.ensure_future(self.network())
        ticker = asyncio.ensure_future(self.tick())
        self.attention.start(self.session.app, get_app_session().output)
        try:
            with patch_stdout():
                while True:
                    try:
                        draft = self.input.next_draft()  # a line kept back to ask about it
                        typed = await self.session.prompt_async(self.prompt_message, default=draft)
                    except (EOFError, KeyboardInterrupt):
                        break
                    if not await self.handle_input(typed):
                        break
                await self._await_confirmations()  # the network task still reads the acks
                network.cancel()
                ticker.cancel()
                await asyncio.gather(network, ticker, return_exceptions=True)
                await self.leave()
            if self.state.removed is not None:
                raise Removed(self.state.removed)
        finally:
            self.attention.stop()
            network.cancel()
            ticker.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(network, ticker, *self._tasks, return_exceptions=True)


async def run_interactive(
    host: str | None,
    port: int,
    name: str | None,
    password: str | None,
    tls: TlsSettings | None = None,
    settings: Settings | None = None,
) -> None:
    """Ask for what is missing, connect and join (`asking.join`), then chat; the session's log,
    when the settings name one, is opened first: one that cannot be written stops it all."""
    settings = settings or Settings()
    log = open_log(settings.log)
    try:
        joined = await join(host, port, name, password, tls)
        if log is not None:
            log.start(f"{joined.welcome.name} on {joined.address}")
        await ChatScreen(
            joined.host,
            joined.port,
            joined.password,
            joined.connection,
            joined.welcome,
            tls,
            settings,
            log,
        ).run()
    finally:
        if log is not None:
            log.close()
