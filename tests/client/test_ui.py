"""The chat screen without a terminal: prompt_toolkit on a pipe input and a dummy output.

The server is real (its own thread, 127.0.0.1, port 0); the screen runs in `asyncio.run` in the
test's thread. Keys go in through the pipe; the tests read the screen's state (transcript, pending
messages, members, status) and what raw members receive, never rendered bytes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.utils import get_cwidth
from support import TIMEOUT

import tcpchat.client.ui.reconnect
import tcpchat.client.ui.screen
from tcpchat.client.connection import ChatConnection
from tcpchat.client.ui.completer import ChatCompleter
from tcpchat.client.ui.render import (
    CONTINUED,
    Bar,
    fragments_text,
    render_event,
    render_toolbar,
    render_welcome,
    screen_rows,
)
from tcpchat.client.ui.screen import ChatScreen, Removed
from tcpchat.protocol import (
    Error,
    ErrorCode,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Private,
    Renamed,
    Shutdown,
    Welcome,
    is_forbidden_char,
)

HOST = "127.0.0.1"
CTRL_D = "\x04"


# --- helpers -----------------------------------------------------------------------------------


async def until(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll `predicate` (10 ms steps) until it holds; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Screen:
    """A running ChatScreen and the pipe that types into it."""

    screen: ChatScreen
    keys: PipeInput
    task: asyncio.Future[None]

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    @property
    def lines(self) -> list[str]:
        return list(self.screen.transcript)

    def has_line(self, *parts: str) -> bool:
        return any(all(part in line for part in parts) for line in self.screen.transcript)

    async def wait_line(self, *parts: str, timeout: float = TIMEOUT) -> str:
        """The first transcript line holding every part, once one does."""
        try:
            await until(lambda: self.has_line(*parts), f"a line with {parts!r}", timeout)
        except AssertionError:
            raise AssertionError(
                f"no transcript line with {parts!r}; transcript: {self.lines!r}"
            ) from None
        return next(line for line in self.lines if all(part in line for part in parts))

    async def quit(self, key: str = CTRL_D) -> None:
        """Ctrl-D (or `key`) on an empty line once nothing waits for its ack, then wait for the
        screen to finish. (Quitting with a message unconfirmed has its own test.)"""
        await until(lambda: not self.screen.state.pending, "every sent message to be confirmed")
        self.type(key)
        await asyncio.wait_for(asyncio.shield(self.task), TIMEOUT)


@asynccontextmanager
async def chat_screen(port: int, name: str = "alice") -> AsyncIterator[Screen]:
    """A ChatScreen joined as `name`, running on a pipe input; stopped at the end whatever happens."""
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        connection = await ChatConnection.open(HOST, port)
        try:
            welcome = await connection.join(name)
        except BaseException:
            await connection.close()
            raise
        screen = ChatScreen(HOST, port, None, connection, welcome)
        task = asyncio.ensure_future(screen.run())
        running = Screen(screen, keys, task)
        try:
            # The prompt is up once the application runs: keys typed from now on reach it.
            await until(lambda: screen.session.app.is_running or task.done(), "the prompt to start")
            yield running
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if screen.connection is not None:
                await screen.connection.close()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """A blocking LineClient call, off the event loop so the screen keeps running meanwhile."""
    return await asyncio.to_thread(function, *args)


def toolbar_text(screen: ChatScreen) -> str:
    return "".join(fragment[1] for fragment in screen.toolbar())  # type: ignore[index,union-attr]


# --- messages ----------------------------------------------------------------------------------


def test_typed_message_reaches_members_and_is_confirmed(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("hello\r")
            message = await in_thread(bob.expect, "message")
            assert (message["from"], message["text"]) == ("alice", "hello")
            line = await ui.wait_line("✓ delivered to 1")
            assert "alice: hello" in line
            assert ui.screen.state.pending == {}
            await ui.quit()

    run(main())


def test_message_with_nobody_else_here_is_confirmed_as_delivered_to_0(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            ui.type("anyone?\r")
            await ui.wait_line("alice: anyone?", "✓ delivered to 0")
            assert ui.screen.state.pending == {}
            await ui.quit()

    run(main())


def test_member_count_follows_joins_and_leaves(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            assert ui.screen.state.members == 1
            assert "1 member online" in toolbar_text(ui.screen)
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "the count after bob joined")
            carol = chat.join("carol")
            await until(lambda: ui.screen.state.members == 3, "the count after carol joined")
            assert "3 members online" in toolbar_text(ui.screen)
            assert ui.screen.state.names == {"alice", "bob", "carol"}
            await ui.wait_line("bob joined", "2 members online")

            bob.send_json({"type": "bye"})
            await until(lambda: ui.screen.state.members == 2, "the count after bob left")
            await ui.wait_line("← bob left", "2 members online")
            carol.close()
            await until(
                lambda: ui.screen.state.members == 1, "the count after carol's connection ended"
            )
            assert ui.screen.state.names == {"alice"}
            assert "1 member online" in toolbar_text(ui.screen)
            await ui.quit()

    run(main())


def test_history_from_welcome_is_shown_first_as_earlier_messages(chat):
    bob = chat.join("bob")
    bob.send_json({"type": "say", "text": "said before alice came", "id": "1"})
    bob.expect("ack")

    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            lines = ui.lines
            assert lines[0].startswith("* Welcome to testserver, alice!")
            marker = lines.index("── earlier messages ──")
            said = next(i for i, line in enumerate(lines) if "bob: said before alice came" in line)
            now = lines.index("── now ──")
            assert marker < said < now
            bob.send_json({"type": "say", "text": "said after", "id": "2"})
            await ui.wait_line("bob: said after")
            assert ui.lines.index("── now ──") < next(
                i for i, line in enumerate(ui.lines) if "said after" in line
            )
            await ui.quit()

    run(main())


def test_over_long_message_goes_as_pieces_the_server_takes(start_server):
    server = start_server(max_text=10)

    async def main() -> None:
        async with chat_screen(server.port) as ui:
            assert ui.screen.state.max_text == 10
            bob = server.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("x" * 11 + "\r")
            await ui.wait_line("Sent as 2 messages: the server takes 10 characters at most.")
            assert (await in_thread(bob.expect, "message"))["text"] == "x" * 10
            assert (await in_thread(bob.expect, "message"))["text"] == "x"
            await ui.wait_line("alice: x", "✓ delivered to 1")
            await ui.quit()

    run(main())


@pytest.mark.parametrize("key", [CTRL_D, "\x03"], ids=["ctrl-d", "ctrl-c"])
def test_ctrl_d_or_ctrl_c_leaves_cleanly(chat, key):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            await ui.quit(key)
            assert ui.task.exception() is None
            assert ui.lines[-1] == "* You left the chat."
            left = await in_thread(bob.expect, "left")
            assert (left["name"], left["reason"], left["members"]) == ("alice", "quit", 1)

    run(main())


def test_quit_command_leaves_cleanly(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("/quit\r")
            await asyncio.wait_for(asyncio.shield(ui.task), TIMEOUT)
            left = await in_thread(bob.expect, "left")
            assert (left["name"], left["reason"]) == ("alice", "quit")

    run(main())


def test_quitting_right_after_sending_waits_for_the_ack_and_reports_it(chat):
    """The ack of a message sent just before Ctrl-D still confirms it, without waiting QUIT_WAIT."""
    bob = chat.join("bob")
    gate = threading.Event()

    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            await until(lambda: ui.screen.state.members == 2, "bob in the member count")
            app = ui.screen.session.app
            try:
                # Hold the server (as a slow link would) so the ack comes after Ctrl-D.
                chat.loop.call_soon_threadsafe(gate.wait, TIMEOUT)
                ui.type("last words\r")
                await until(
                    lambda: any(item.sent for item in ui.screen.state.pending.values()),
                    "the message to be sent",
                )
                await until(lambda: app.is_running, "the next prompt")
                ui.type(CTRL_D)
                await until(lambda: not app.is_running, "the prompt to end on Ctrl-D")
            finally:
                gate.set()
            started = time.monotonic()
            await asyncio.wait_for(asyncio.shield(ui.task), 2 * tcpchat.client.ui.screen.QUIT_WAIT)
            took = time.monotonic() - started
            assert (await in_thread(bob.expect, "joined"))["name"] == "alice"
            message = await in_thread(bob.expect, "message")
            assert message["text"] == "last words"
            assert not any("not confirmed" in line for line in ui.lines), ui.lines
            assert any("last words" in line and "✓ delivered to 1" in line for line in ui.lines), (
                ui.lines
            )
            assert took < tcpchat.client.ui.screen.QUIT_WAIT / 2, f"leaving took {took:.1f} s"

    run(main())


# --- commands ----------------------------------------------------------------------------------


def test_who_lists_the_members(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("/who\r")
            line = await ui.wait_line("2 members online: alice, bob")
            assert line.startswith("* ")
            await ui.quit()

    run(main())


def test_nick_changes_the_name_everywhere(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("/nick alicia\r")
            await until(lambda: ui.screen.state.name == "alicia", "the new name")
            await ui.wait_line("alice is now alicia")
            assert ui.screen.state.names == {"alicia", "bob"}
            assert "you: alicia" in toolbar_text(ui.screen)
            renamed = await in_thread(bob.expect, "renamed")
            assert (renamed["old"], renamed["new"]) == ("alice", "alicia")
            # Later messages go out under the new name.
            ui.type("hi again\r")
            message = await in_thread(bob.expect, "message")
            assert message["from"] == "alicia"
            await ui.wait_line("alicia: hi again", "✓ delivered to 1")
            await ui.quit()

    run(main())


def test_nick_without_a_name_shows_usage(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            ui.type("/nick\r")
            await ui.wait_line("usage: /nick NAME")
            assert ui.screen.state.name == "alice"
            await ui.quit()

    run(main())


def test_msg_sends_a_private_message_to_its_target_only(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            carol = chat.join("carol")
            bob.expect("joined")
            await until(lambda: ui.screen.state.members == 3, "bob and carol")
            ui.type("/msg carol just for you\r")
            private = await in_thread(carol.expect, "private")
            assert (private["from"], private["to"], private["text"]) == (
                "alice",
                "carol",
                "just for you",
            )
            line = await ui.wait_line("just for you", "✓ delivered to 1")
            assert "alice → carol (private): just for you" in line
            # bob got nothing of it: his next event is the next public message.
            ui.type("for all\r")
            assert (await in_thread(bob.expect, "message"))["text"] == "for all"
            await ui.quit()

    run(main())


def test_msg_to_nobody_is_reported_and_not_left_pending(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            ui.type("/msg nobody hello?\r")
            await ui.wait_line("not sent", "hello?")
            assert ui.screen.state.pending == {}
            await ui.quit()

    run(main())


def test_help_lists_every_command(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            ui.type("/help\r")
            await ui.wait_line("//")
            for command in ("/help", "/who", "/nick", "/msg", "/quit"):
                assert any(line.startswith(f"* {command}") for line in ui.lines), command
            await ui.quit()

    run(main())


def test_unknown_command_gives_one_line_error_and_sends_nothing(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            before = len(ui.lines)
            ui.type("/frobnicate now\r")
            await ui.wait_line("/frobnicate")
            new = ui.lines[before:]
            assert len(new) == 1, new
            assert new[0].startswith("! unknown command /frobnicate")
            assert ui.screen.state.pending == {}
            ui.type("after\r")
            assert (await in_thread(bob.expect, "message"))["text"] == "after"
            await ui.quit()

    run(main())


def test_double_slash_sends_a_line_starting_with_slash(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            await until(lambda: ui.screen.state.members == 2, "bob's join")
            ui.type("//shrug is a command elsewhere\r")
            message = await in_thread(bob.expect, "message")
            assert message["text"] == "/shrug is a command elsewhere"
            await ui.wait_line("alice: /shrug is a command elsewhere", "✓ delivered to 1")
            await ui.quit()

    run(main())


# --- completion --------------------------------------------------------------------------------


def completions(screen: ChatScreen, text: str) -> list[tuple[str, int]]:
    document = Document(text, len(text))
    found = ChatCompleter(screen.state).get_completions(
        document, CompleteEvent(completion_requested=True)
    )
    return [(c.text, c.start_position) for c in found]


def test_completer_completes_commands_after_slash(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            assert completions(ui.screen, "/ms") == [("/msg ", -3)]
            assert completions(ui.screen, "/") == [
                ("/help ", -1),
                ("/who ", -1),
                ("/nick ", -1),
                ("/msg ", -1),
                ("/me ", -1),
                ("/history ", -1),
                ("/search ", -1),
                ("/r ", -1),
                ("/away ", -1),
                ("/back ", -1),
                ("/ignore ", -1),
                ("/unignore ", -1),
                ("/clear ", -1),
                ("/set ", -1),
                ("/quit ", -1),
            ]
            assert completions(ui.screen, "/h") == [("/help ", -2), ("/history ", -2)]
            assert completions(ui.screen, "/xyz") == []
            await ui.quit()

    run(main())


def test_completer_offers_recent_speakers_first_and_never_oneself(chat):
    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            anna = chat.join("anna")
            bob = chat.join("bob")
            chat.join("carol")
            await until(lambda: ui.screen.state.members == 4, "everyone's join")
            bob.send_json({"type": "say", "text": "first", "id": "1"})
            await ui.wait_line("bob: first")
            anna.send_json({"type": "say", "text": "second", "id": "1"})
            await ui.wait_line("anna: second")

            # anna spoke last, then bob; carol only by name order; alice (me) never.
            assert completions(ui.screen, "/msg ") == [("anna ", 0), ("bob ", 0), ("carol ", 0)]
            assert completions(ui.screen, "/msg a") == [("anna ", -1)]
            assert completions(ui.screen, "thanks C") == [("carol ", -1)]
            assert completions(ui.screen, "hi ") == []
            await ui.quit()

    run(main())


def test_a_completed_name_is_followed_by_a_separator(chat):
    """`name: ` addresses someone at the start of a line; elsewhere a space ends the word."""

    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            bob = chat.join("bob")
            chat.join("caroline")
            assert (await in_thread(bob.expect, "joined"))["name"] == "caroline"
            await until(lambda: ui.screen.state.members == 3, "everyone's join")
            assert completions(ui.screen, "ca") == [("caroline: ", -2)]
            assert completions(ui.screen, "first line\n  ca") == [("caroline: ", -2)]
            assert completions(ui.screen, "ask ca") == [("caroline ", -2)]
            buffer = ui.screen.session.default_buffer
            for typed, completed, rest, sent in [
                ("caro", "caroline: ", "nice name", "caroline: nice name"),
                ("ask caro", "ask caroline ", "first", "ask caroline first"),
            ]:
                ui.type(typed + "\t")
                await until(lambda want=completed: buffer.text == want, repr(completed))
                ui.type(rest + "\r")
                assert (await in_thread(bob.expect, "message"))["text"] == sent
            await ui.quit()

    run(main())


# --- reconnecting ------------------------------------------------------------------------------


def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry within tens of milliseconds instead of seconds (tuning, not the thing under test)."""
    monkeypatch.setattr(tcpchat.client.ui.reconnect, "RECONNECT_FIRST", 0.05)
    monkeypatch.setattr(tcpchat.client.ui.reconnect, "RECONNECT_MAX", 0.2)


def test_reconnects_to_restarted_server_and_sends_what_was_typed_offline(start_server, monkeypatch):
    fast_reconnect(monkeypatch)
    first = start_server()
    port = first.port

    async def main() -> None:
        async with chat_screen(port) as ui:
            lost = ui.screen.connection
            assert lost is not None
            try:
                ui.type("before\r")
                await ui.wait_line("alice: before", "✓ delivered to 0")

                await in_thread(first.stop)
                await until(
                    lambda: ui.screen.state.status.startswith("offline"), "the offline status"
                )
                assert "offline" in toolbar_text(ui.screen)
                assert ui.screen.connection is None

                ui.type("typed while offline\r")
                await until(
                    lambda: len(ui.screen.state.pending) == 1, "the offline message to wait"
                )
                (item,) = ui.screen.state.pending.values()
                assert (item.text, item.sent) == ("typed while offline", False)

                second = await in_thread(lambda: start_server(port=port))
                bob = await in_thread(second.connect)
                await in_thread(bob.read_line)  # the banner
                bob.send_json({"type": "hello", "name": "bob", "version": 1})
                welcome = await in_thread(bob.expect, "welcome")
                await until(
                    lambda: ui.screen.state.status == "online", "the online status", 3 * TIMEOUT
                )
                assert "● online" in toolbar_text(ui.screen)
                await ui.wait_line("Back online as alice")
                # alice may rejoin (and send) before or after bob joins: either way bob learns
                # of her and of her message exactly once, from his welcome or as events.
                heard = [m["text"] for m in welcome["history"] if m["from"] == "alice"]
                delivered = 0 if heard else 1  # sent before bob was there, or to him
                present = "alice" in welcome["names"]
                while not (present and heard):
                    event = await in_thread(bob.read_json)
                    if event["type"] == "joined":
                        assert event["name"] == "alice" and not present
                        present = True
                    elif event["type"] == "message":
                        heard.append(event["text"])
                assert heard == ["typed while offline"]
                await ui.wait_line("alice: typed while offline", f"✓ delivered to {delivered}")
                assert ui.screen.state.pending == {}
                await ui.quit()
            finally:
                # The screen leaves the lost connection open (see the test below); close it
                # here so that bug does not also fail this test as an unclosed-socket warning.
                await lost.close()

    run(main())


def is_closed(connection: ChatConnection) -> bool:
    # No public way to ask; the transport is what holds the socket.
    return connection.is_closed


def test_lost_connection_is_closed_not_left_open(start_server, monkeypatch):
    fast_reconnect(monkeypatch)
    first = start_server()
    port = first.port

    async def main() -> None:
        async with chat_screen(port) as ui:
            lost = ui.screen.connection
            assert lost is not None
            try:
                await in_thread(first.stop)
                await until(
                    lambda: ui.screen.state.status.startswith("offline"), "the offline status"
                )
                await in_thread(lambda: start_server(port=port))
                await until(
                    lambda: ui.screen.state.status == "online", "the online status", 3 * TIMEOUT
                )
                await until(
                    lambda: is_closed(lost),
                    "the lost connection to be closed (its socket is still open)",
                )
                await ui.quit()
            finally:
                await lost.close()

    run(main())


# --- rendering (pure) --------------------------------------------------------------------------

NASTY = (
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 \u202eevil\u202c \u2066iso\u2069 \x9b2J \x7f\x08\r\x00end"
)
TS = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


def unsafe_chars(fragments: list[tuple[str, str]]) -> list[str]:
    """Every character a terminal would act on rather than show (LF only as a line break)."""
    text = fragments_text(fragments)
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c != "\n" and (is_forbidden_char(c) or unicodedata.category(c) == "Cc")
    ]


@pytest.mark.parametrize(
    "event",
    [
        Message(seq=1, sender="bob", text=NASTY, ts=TS),
        Private(sender="bob", to="alice", text=NASTY, ts=TS),
        Joined(name=NASTY, members=2, ts=TS),
        Left(name=NASTY, members=1, reason=LeaveReason.QUIT, ts=TS),
        Renamed(old=NASTY, new=NASTY, ts=TS),
        Members(names=[NASTY, "alice"], members=2),
        Error(code=ErrorCode.BAD_TEXT, message=NASTY),
        Shutdown(message=NASTY),
    ],
    ids=lambda event: type(event).__name__,
)
def test_rendered_events_hold_no_escape_control_or_bidi_characters(event):
    fragments = render_event(event, "alice")
    assert fragments
    assert unsafe_chars(fragments) == []
    # The visible words survive; only the dangerous characters go.
    assert "red" in fragments_text(fragments)
    assert "end" in fragments_text(fragments)


def rows_text(fragments: list[tuple[str, str]], width: int) -> list[str]:
    return [fragments_text(row) for row in screen_rows(fragments, width)]


UNDER = " " * len("09:30 bob: ¦"[:-3]) + CONTINUED  # a row after the first, under the text


def test_rendered_message_keeps_line_breaks_and_expands_tabs():
    fragments = render_event(Message(seq=1, sender="bob", text="a\tb\nc", ts=TS), "alice")
    assert fragments_text(fragments).endswith("bob: a    b\nc")
    assert unsafe_chars(fragments) == []
    assert rows_text(fragments, 80) == ["09:30 bob: a    b", UNDER + "c"]


@pytest.mark.parametrize("width", [80, 41, 20])
def test_every_row_after_the_first_is_marked_and_no_row_is_wider_than_the_screen(width):
    """Wide characters count two columns (one that does not fit starts the next row)."""
    text = "漢字" * 30 + " " * 200 + "x" * 100 + "\n\n" + "e\u0301" * 50
    fragments = render_event(Message(seq=1, sender="bob", text=text, ts=TS), "alice")
    assert fragments
    rows = rows_text(fragments, width)
    assert rows[0].startswith("09:30 bob: 漢")
    assert all(row.lstrip(" ").startswith(CONTINUED) for row in rows[1:]), rows
    assert all(get_cwidth(row) <= width for row in rows), rows
    assert max(get_cwidth(row) for row in rows) >= width - 1  # full rows are filled
    # Nothing is lost but the spaces where a full row broke.
    shown = "".join(row.lstrip(" ").removeprefix(CONTINUED) for row in rows)
    assert shown.replace(" ", "") == fragments_text(fragments).replace("\n", "").replace(" ", "")


def test_a_full_row_breaks_before_the_word_that_does_not_fit():
    text = "the quick brown fox jumps over the lazy dog " + "z" * 60
    fragments = render_event(Message(seq=1, sender="bob", text=text, ts=TS), "bob")
    assert fragments
    # A word longer than a row starts where it is and breaks where the row ends.
    assert rows_text(fragments, 40) == [
        "09:30 bob: the quick brown fox jumps",
        UNDER + "over the lazy dog " + "z" * 11,
        UNDER + "z" * 29,
        UNDER + "z" * 20,
    ]
    # Styles run across the breaks: the name keeps its own, the text its own.
    first = screen_rows(fragments, 40)[0]
    assert [text for style, text in first if "name." in style] == ["bob"]


def test_rendered_welcome_holds_no_escape_control_or_bidi_characters():
    welcome = Welcome(
        name="alice",
        members=2,
        names=["alice", NASTY],
        server=NASTY,
        motd=NASTY,
        max_text=1024,
        version=1,
        history=[Message(seq=1, sender="bob", text=NASTY, ts=TS)],
    )
    lines = render_welcome(welcome)
    assert len(lines) == 5  # greeting, motd, earlier marker, the message, now marker
    for fragments in lines:
        assert unsafe_chars(fragments) == [], fragments


def test_a_mention_highlights_the_name_not_the_whole_message():
    message = Message(seq=1, sender="bob", text="hey Alice, look", ts=datetime.now(timezone.utc))
    fragments = render_event(message, "alice")
    assert fragments is not None
    highlighted = [text for style, text in fragments if "mention" in style]
    assert highlighted == ["Alice"]
    assert fragments_text(fragments).endswith("bob: hey Alice, look")


def test_a_name_inside_another_word_is_no_mention():
    message = Message(
        seq=1, sender="bob", text="malice aforethought", ts=datetime.now(timezone.utc)
    )
    fragments = render_event(message, "alice")
    assert fragments is not None
    assert not any("mention" in style for style, _ in fragments)


def test_ctrl_c_on_a_typed_line_clears_it_and_stays(chat):
    """As in a shell: Ctrl-C throws the half-typed line away; only on an empty line it leaves."""

    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            ui.type("a line I regret")
            buffer = ui.screen.session.default_buffer
            await until(lambda: buffer.text == "a line I regret", "the typed line")
            ui.type("\x03")
            await until(lambda: buffer.text == "", "the line to be cleared")
            assert not ui.task.done()
            assert ui.screen.state.pending == {}
            await ui.quit("\x03")
            assert ui.lines[-1] == "* You left the chat."

    run(main())


def test_nick_while_offline_chooses_the_name_to_rejoin_with(start_server, monkeypatch):
    """The old name was taken while we were away: /nick offline, and the rejoin uses the new one."""
    fast_reconnect(monkeypatch)
    first = start_server()
    port = first.port

    async def main() -> None:
        async with chat_screen(port) as ui:
            lost = ui.screen.connection
            assert lost is not None
            try:
                await in_thread(first.stop)
                await until(
                    lambda: ui.screen.state.status.startswith("offline"), "the offline status"
                )
                ui.type("/nick alicia\r")
                await ui.wait_line("You will rejoin as alicia")
                second = await in_thread(lambda: start_server(port=port))
                await in_thread(second.join, "bob")
                await until(
                    lambda: ui.screen.state.status == "online", "the online status", 3 * TIMEOUT
                )
                # Either order is right: we rejoin before bob (his welcome names us) or after.
                names = await in_thread(lambda: second.call(second.server.lobby.sorted_names))
                assert names == ["alicia", "bob"]
                assert ui.screen.state.name == "alicia"
                await ui.quit()
            finally:
                await lost.close()

    run(main())


def test_private_message_typed_offline_waits_for_its_recipient_to_rejoin(start_server, monkeypatch):
    """Both were cut off; we are back first: the /msg waits for bob instead of failing."""
    fast_reconnect(monkeypatch)
    first = start_server()
    port = first.port

    async def main() -> None:
        async with chat_screen(port) as ui:
            lost = ui.screen.connection
            assert lost is not None
            try:
                await in_thread(first.stop)
                await until(
                    lambda: ui.screen.state.status.startswith("offline"), "the offline status"
                )
                ui.type("/msg bob see you soon\r")
                await until(
                    lambda: len(ui.screen.state.pending) == 1, "the private message to wait"
                )
                second = await in_thread(lambda: start_server(port=port))
                await until(
                    lambda: ui.screen.state.status == "online", "the online status", 3 * TIMEOUT
                )
                await ui.wait_line("bob is not back yet")
                bob = await in_thread(second.join, "bob")
                private = await in_thread(bob.expect, "private")
                assert (private["from"], private["text"]) == ("alice", "see you soon")
                await ui.wait_line("alice → bob (private): see you soon", "✓ delivered to 1")
                assert ui.screen.state.pending == {}
                await ui.quit()
            finally:
                await lost.close()

    run(main())


@pytest.mark.parametrize("removal", ["kick", "idle"])
def test_removed_by_the_server_says_why_and_does_not_reconnect(start_server, monkeypatch, removal):
    fast_reconnect(monkeypatch)
    from tcpchat.server import moderation

    server = start_server(idle_timeout=0.4 if removal == "idle" else None)

    async def main() -> None:
        async with chat_screen(server.port) as ui:
            watcher = await in_thread(server.join, "bob")
            if removal == "kick":
                answer = await in_thread(
                    server.call, lambda: moderation.execute(server.server, "/kick alice flooding")
                )
                assert answer == "Removed alice."
                said = "You were removed from the chat by the server's operator: flooding"
            else:
                await ui.wait_line("server", "idle")  # the private warning first
                said = "You were idle for"
            with pytest.raises(Removed, match=said):  # the screen ends itself, saying why
                await asyncio.wait_for(asyncio.shield(ui.task), TIMEOUT)
            assert ui.screen.state.status == "removed"
            assert not ui.has_line("You left the chat")
            lines = await in_thread(watcher.read_until, lambda line: '"type":"left"' in line)
            left = json.loads(lines[-1])
            assert (left["name"], left["reason"]) == (
                "alice",
                "kicked" if removal == "kick" else "timeout",
            )
            assert not any("Reconnecting" in line for line in ui.lines)

    run(main())


def test_a_password_the_restarted_server_refuses_stops_the_retries(start_server, monkeypatch):
    fast_reconnect(monkeypatch)
    first = start_server(password="old")
    port = first.port

    async def main() -> None:
        with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
            connection = await ChatConnection.open(HOST, port)
            welcome = await connection.join("alice", "old")
            screen = ChatScreen(HOST, port, "old", connection, welcome)
            task = asyncio.ensure_future(screen.run())
            await until(lambda: screen.session.app.is_running, "the prompt to start")
            await in_thread(first.stop)
            await in_thread(lambda: start_server(port=port, password="new"))
            with pytest.raises(Removed, match="no longer takes your password"):
                await asyncio.wait_for(asyncio.shield(task), 3 * TIMEOUT)
            assert screen.state.status == "removed"
            assert "You left the chat" not in "\n".join(screen.transcript)

    run(main())


# Names a member may take (letters, digits, `_-.`) that look like, or fold near, `server`.
OPERATOR_LOOKALIKES = [
    "serѵеr",
    "ѕеrvеr",
    "ꜱerver",
    "serνer",
    "server.",
    "Server_",
    "ｓｅｒｖｅｒ1",
]


def speaker(event: Message | Private) -> tuple[str, str]:
    """The (style, text) of who a rendered message is from (after its time)."""
    fragments = render_event(event, "alice")
    assert fragments is not None and fragments[0][0] == "class:time"
    return fragments[1]


@pytest.mark.parametrize("kind", [Message, Private])
def test_the_operator_has_a_look_no_member_name_can_have(kind):
    def said_by(sender: str) -> Message | Private:
        if kind is Message:
            return Message(seq=1, sender=sender, text="maintenance at noon", ts=TS)
        return Private(sender=sender, to="alice", text="maintenance at noon", ts=TS)

    style, shown = speaker(said_by("server"))
    assert "server" in shown
    # A character no name may hold, and a style no name gets.
    assert any(not (char.isalnum() or char in "_-.") for char in shown), shown
    assert "name." not in style and "operator" in style
    for name in OPERATOR_LOOKALIKES:
        assert all(char.isalnum() or char in "_-." for char in name), name  # a name's characters
        member_style, member_shown = speaker(said_by(name))
        assert "operator" not in member_style and member_style != style, name
        assert member_shown == name


BAR = Bar(status="online", server="testserver", name="alice", members=3, address="127.0.0.1:1024")
OFFLINE = replace(
    BAR,
    status="offline",
    detail="retrying in 30 s",
    problem="the server refused the connection: too many connections from your address",
)


@pytest.mark.parametrize(
    ("bar", "width", "shown"),
    [
        (BAR, 100, ["● online", "testserver", "you: alice", "3 members online", "1024", "/help"]),
        (BAR, 40, ["● online", "alice", "3 members online"]),
        (OFFLINE, 160, ["(the server refused", "retrying in 30 s", "last known: 3 members online"]),
        (OFFLINE, 80, ["○ offline", "retrying in 30 s", "last known: 3 members online"]),
        (OFFLINE, 40, ["○ offline", "alice", "3 members online"]),
        (
            replace(OFFLINE, name="alexandra-the-great"),
            40,
            ["○ offline", "alexandr…", "3 members online"],
        ),
        (OFFLINE, 30, ["○ offline", "3 members online"]),
    ],
)
def test_the_toolbar_keeps_the_state_and_the_member_count_whatever_the_width(bar, width, shown):
    text = fragments_text(render_toolbar(bar, width))
    assert get_cwidth(text) <= width, text
    for part in shown:
        assert part in text, (part, text)
