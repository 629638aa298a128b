"""The chat screen across a broken link: it resumes after the last `seq` it saw, takes its name
back with its token, and resends what was never confirmed with the same id, once.

The server is real (its own thread); between it and the screen runs `Relay`, a TCP relay in the
test's event loop that the test breaks on purpose: it cuts the screen's side while the server's
side stays open (a connection frozen somewhere on the way, which the server still counts as a
member), refuses new connections while "down", and can cut right after a chosen line went through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from support import TIMEOUT
from test_ui import chat_screen, fast_reconnect, in_thread, run, until

from tcpchat.client.ui.screen import Removed

HOST = "127.0.0.1"


class Relay:
    """Relays TCP connections to the server's port, line by line from the client."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.accepting = True  # False: a new connection is closed at once, as if the link is down
        # A line from the client after which its side is cut (the line reaches the server);
        # with `cut_both`, the server's side is closed too (the server sees a disconnection).
        self.cut_after: Callable[[bytes], bool] | None = None
        self.cut_both = False
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for client, server in self.links:
            client.transport.abort()
            server.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Drop every client's side; the server's sides stay open and silent (frozen)."""
        for client, _ in self.links:
            client.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        self.links.append((writer, up_writer))
        for work in (
            self._upstream(reader, up_writer, writer),
            self._downstream(up_reader, writer),
        ):
            task = asyncio.ensure_future(work)
            self._tasks.add(task)

    async def _upstream(
        self, reader: asyncio.StreamReader, to: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while line := await reader.readline():
                to.write(line)
                await to.drain()
                if self.cut_after is not None and self.cut_after(line):
                    self.cut_after = None
                    client.transport.abort()
                    if self.cut_both:
                        to.close()  # after the line: the server reads it, then the end
                    return

    async def _downstream(self, reader: asyncio.StreamReader, to: asyncio.StreamWriter) -> None:
        """What the server sends, to the client while its side is open; read (and dropped)
        after, so that the server never finds the frozen member slow."""
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not to.transport.is_closing():
                    to.write(data)


async def online(ui, what: str = "the online status") -> None:
    await until(lambda: ui.screen.state.status == "online", what, 3 * TIMEOUT)


async def offline(ui) -> None:
    await until(lambda: ui.screen.state.status.startswith("offline"), "the offline status")


def test_a_rejoin_shows_what_was_missed_once_in_order_and_takes_the_name_back(chat, monkeypatch):
    """The screen's old connection is frozen (the server still has alice): the rejoin's token
    takes the name back at once, and its `since` brings exactly the messages missed."""
    fast_reconnect(monkeypatch)

    async def main() -> None:
        bob = await in_thread(chat.join, "bob")
        async with Relay(chat.port) as relay, chat_screen(relay.port) as ui:
            await in_thread(bob.expect, "joined")
            bob.send_json({"type": "say", "text": "seen", "id": "0"})
            await in_thread(bob.expect, "ack")
            await ui.wait_line("bob: seen")
            relay.accepting = False
            relay.cut()
            await offline(ui)
            for n in range(1, 4):
                bob.send_json({"type": "say", "text": f"away {n}", "id": str(n)})
                await in_thread(bob.expect, "ack")
            relay.accepting = True
            await online(ui)
            left = await in_thread(bob.expect, "left")
            assert (left["name"], left["reason"]) == ("alice", "replaced")
            assert (await in_thread(bob.expect, "joined"))["name"] == "alice"
            await ui.wait_line("Back online as alice")
            assert not ui.has_line("taken")
            away = [line for line in ui.lines if "bob: away" in line]
            assert [line.rpartition(" ")[2] for line in away] == ["1", "2", "3"]
            assert ui.has_line("3 messages while you were away")
            assert ui.lines.index("── while you were away ──") < ui.lines.index(away[0])
            assert sum("bob: seen" in line for line in ui.lines) == 1
            assert not ui.has_line("missing")
            await ui.quit()

    run(main())


def test_a_rejoin_to_a_server_that_lost_its_history_says_messages_may_be_missing(
    start_server, monkeypatch
):
    fast_reconnect(monkeypatch)
    first = start_server()
    port = first.port

    async def main() -> None:
        async with chat_screen(port) as ui:
            ui.type("before\r")
            await ui.wait_line("alice: before", "✓ delivered to 0")
            await in_thread(first.stop)
            await offline(ui)
            await in_thread(lambda: start_server(port=port))
            await online(ui)
            await ui.wait_line("Messages from while you were away may be missing")
            assert ui.screen.state.resume()[0] == 0  # the new server's newest `seq`
            await ui.quit()

    run(main())


def test_a_connection_another_takes_the_name_from_ends_and_does_not_reconnect(chat, monkeypatch):
    fast_reconnect(monkeypatch)

    async def main() -> None:
        async with chat_screen(chat.port) as ui:
            token = ui.screen.state.token
            assert token
            elsewhere = await in_thread(chat.connect)
            await in_thread(elsewhere.read_line)  # the banner
            elsewhere.send_json({"type": "hello", "name": "alice", "version": 1, "token": token})
            assert (await in_thread(elsewhere.expect, "welcome"))["name"] == "alice"
            with pytest.raises(Removed, match="You connected again from elsewhere"):
                await asyncio.wait_for(asyncio.shield(ui.task), TIMEOUT)
            assert not ui.has_line("Reconnecting")

    run(main())


@pytest.mark.parametrize("cut", ["frozen", "closed"])
def test_a_message_whose_ack_the_link_lost_is_resent_and_delivered_once(chat, monkeypatch, cut):
    """The relay cuts the screen off right after its `say` went through, before the ack came
    back; the old connection is frozen (still a member) or closed (the server saw it go)."""
    fast_reconnect(monkeypatch)

    async def main() -> None:
        bob = await in_thread(chat.join, "bob")
        async with Relay(chat.port) as relay, chat_screen(relay.port) as ui:
            await in_thread(bob.expect, "joined")
            relay.cut_both = cut == "closed"
            relay.cut_after = lambda line: b'"say"' in line
            ui.type("exactly once\r")
            message = await in_thread(bob.expect, "message")
            assert message["text"] == "exactly once"
            await ui.wait_line("alice: exactly once", "✓ delivered to 1")
            assert ui.screen.state.pending == {}
            assert not ui.has_line("may not have arrived")
            assert sum("exactly once" in line for line in ui.lines) == 1
            # What bob heard since: alice going and coming back, and not the message again.
            bob.send_json({"type": "ping", "id": "end"})
            heard = await in_thread(bob.read_until, lambda line: '"pong"' in line)
            assert not any("exactly once" in line for line in heard), heard
            await ui.quit()

    run(main())
