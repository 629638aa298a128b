"""An asyncio client framework for storms: hundreds of connections from one thread, no threads each.

A storm runs in a fresh event loop in the test's thread (`run_storm`) against a server running in
its own thread (`support.running`).  `Pool` opens every connection and closes them all at the end;
`Peer` is one connection read as lines, every read with a deadline; `Watcher` is a member that
reads everything in a task of its own and holds the checks every storm ends with (no gap in
`seq`, each sender's texts in order, member counts that walk one by one).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from support import TIMEOUT
from support.chat import hello, json_line, say
from support.running import RunningServer

Event = dict[str, Any]

BUDGET = 8 * TIMEOUT  # for one whole storm, checks included
READ_LIMIT = 16 * 1024 * 1024  # server lines can be long (a welcome with history)


# --- lines ---------------------------------------------------------------------------------------


def run_storm(storm: Coroutine[Any, Any, None]) -> None:
    """Run one storm in a fresh event loop in this thread, within its budget."""
    asyncio.run(asyncio.wait_for(storm, BUDGET))


async def together(*jobs: Awaitable[Any]) -> list[Any]:
    """Run jobs concurrently; the first failure cancels the rest (so it is the one reported)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- waiting -------------------------------------------------------------------------------------


class Signal:
    """Wakes every waiter when something changed; a wait is for a predicate, with a deadline."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def until(
        self, predicate: Callable[[], bool], timeout: float, what: Callable[[], str]
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"not within {timeout:g} s: {what()}")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                pass


class Progress:
    """A counter other tasks can wait on (to spread messages over a storm)."""

    def __init__(self) -> None:
        self.count = 0
        self._signal = Signal()

    def add(self) -> None:
        self.count += 1
        self._signal.notify()

    async def reached(self, target: int, timeout: float) -> None:
        await self._signal.until(
            lambda: self.count >= target, timeout, lambda: f"progress {self.count} < {target}"
        )


async def send_across(
    storm: Progress,
    size: int,
    peer: Peer,
    name: str,
    count: int,
    batch: int,
    message: Callable[[int], tuple[str, str]],
    said: dict[str, list[str]],
    acked: dict[int, tuple[str, str]],
) -> None:
    """Send `count` messages (text, id) = message(i) from `name`, `batch` at a time: batch b
    once b/(count/batch) of the storm's `size` steps are done, so the messages span the storm."""
    for step in range(count // batch):
        await storm.reached(step * size * batch // count, BUDGET)
        texts = [message(i) for i in range(step * batch, (step + 1) * batch)]
        said[name] += [text for text, _ in texts]
        got = await peer.say_all(name, texts)
        assert not acked.keys() & got.keys()  # a seq is acknowledged once
        acked.update(got)


async def poll_server(
    running: RunningServer, read: Callable[[], Any], expected: Any, timeout: float
) -> None:
    """Poll server state (read in its own loop) until it equals `expected`, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(running.call, read)
        if value == expected or time.monotonic() > deadline:
            assert value == expected
            return
        await asyncio.sleep(0.02)  # pacing between polls, not synchronisation


# --- clients -------------------------------------------------------------------------------------


class Peer:
    """One asyncio client connection read as lines; every read has a deadline."""

    def __init__(
        self, label: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.label = label
        self.reader = reader
        self.writer = writer

    def send(self, *events: Event) -> None:
        self.writer.write(b"".join(json_line(event) for event in events))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def line(self, timeout: float = TIMEOUT) -> bytes:
        """The next line without its `\\n`; AssertionError at a timeout or the end."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.label}: no line within {timeout:g} s") from None
        if not line.endswith(b"\n"):
            raise AssertionError(f"{self.label}: closed; have {line[:200]!r}")
        return line[:-1]

    async def event(self, timeout: float = TIMEOUT) -> Event:
        event = json.loads(await self.line(timeout))
        assert isinstance(event, dict), event
        return event

    async def expect(self, kind: str) -> Event:
        event = await self.event()
        assert event["type"] == kind, (self.label, event)
        return event

    async def reply(self, timeout: float = TIMEOUT) -> Event:
        """The next `ack` (never an `error`), skipping room events (a sender gets those too)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            event = await self.event(max(0.01, deadline - asyncio.get_running_loop().time()))
            assert event["type"] != "error", (self.label, event)
            if event["type"] == "ack":
                return event

    async def until_line(self, predicate: Callable[[bytes], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not predicate(
            await self.line(max(0.01, deadline - asyncio.get_running_loop().time()))
        ):
            pass

    async def eof(self, timeout: float = TIMEOUT) -> bytes:
        """Everything up to the server's close (or its reset); AssertionError if it stays open."""
        data = b""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.label}: the server did not close; have {data[-200:]!r}"
                )
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), remaining)
            except asyncio.TimeoutError:
                continue
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    async def say_all(
        self, name: str, texts: list[tuple[str, str]], delivered: list[int] | None = None
    ) -> dict[int, tuple[str, str]]:
        """Send (text, id) pairs in one write; their acks, in order, as seq -> (name, text)
        (and each ack's `delivered` appended to `delivered`)."""
        self.send(*(say(text, request_id) for text, request_id in texts))
        acked: dict[int, tuple[str, str]] = {}
        for text, request_id in texts:
            ack = await self.reply()
            assert ack["id"] == request_id, (self.label, ack)
            acked[ack["seq"]] = (name, text)
            if delivered is not None:
                delivered.append(ack["delivered"])
        assert list(acked) == sorted(acked), acked  # each sender's seqs grow
        return acked

    def close(self) -> None:
        """Close our side (after the server's close, as any client does)."""
        self.writer.close()

    def half_close(self) -> None:
        """Close our sending side (FIN); the server answers what it got, then closes."""
        self.writer.write_eof()

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0), dropping whatever is unsent."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Watcher:
    """A JSON member that reads every event as it comes, in a task of its own."""

    def __init__(self, peer: Peer, welcome: Event) -> None:
        self.peer = peer
        self.welcome = welcome
        self.events: list[Event] = []
        self.ended: BaseException | str | None = None
        self._signal = Signal()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                line = await self.peer.reader.readline()
                if not line.endswith(b"\n"):
                    self.ended = f"closed by the server; have {line[:200]!r}"
                    return
                self.events.append(json.loads(line))
                self._signal.notify()
        except Exception as exc:
            self.ended = exc
        finally:
            self._signal.notify()

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event["type"] == kind]

    async def until(
        self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT
    ) -> None:
        def ready() -> bool:
            assert self.ended is None, f"the watcher's connection ended: {self.ended}"
            return predicate()

        await self._signal.until(ready, timeout, lambda: f"{what} ({len(self.events)} events)")

    async def who(self) -> Event:
        before = len(self.of("members"))
        self.peer.send({"type": "who"})
        await self.until(lambda: len(self.of("members")) > before, "the who answer")
        return self.of("members")[-1]

    def stop(self) -> None:
        self._task.cancel()

    # --- the checks every storm ends with --------------------------------------------------------

    def walk_counts(self) -> int:
        """Each `joined` is the count before + 1, each `left` − 1, from the welcome's count."""
        count = self.welcome["members"]
        for event in self.events:
            if event["type"] == "joined":
                assert event["members"] == count + 1, (event, count)
                count += 1
            elif event["type"] == "left":
                assert event["members"] == count - 1, (event, count)
                count -= 1
        return count

    def check_messages(self, last_seq: int, said: dict[str, list[str]]) -> None:
        """Exactly seq 1..last_seq, in order; per sender exactly the texts it said, in order."""
        messages = self.of("message")
        assert [m["seq"] for m in messages] == list(range(1, last_seq + 1))
        by_sender: dict[str, list[str]] = defaultdict(list)
        for message in messages:
            by_sender[message["from"]].append(message["text"])
        assert dict(by_sender) == {name: texts for name, texts in said.items() if texts}

    def check_acked(self, acked: dict[int, tuple[str, str]]) -> None:
        """Every acked message reached the watcher with that seq, sender and text."""
        by_seq = {m["seq"]: (m["from"], m["text"]) for m in self.of("message")}
        missing = {seq: sent for seq, sent in acked.items() if by_seq.get(seq) != sent}
        assert not missing, f"{len(missing)} acked messages did not reach the watcher as sent"


class Pool:
    """Every connection a storm opens, all closed when it ends."""

    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.port = running.port
        self.peers: list[Peer] = []
        self.sockets: list[socket.socket] = []
        self.watchers: list[Watcher] = []

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for peer in self.peers:
            peer.writer.transport.abort()
        for sock in self.sockets:
            sock.close()
        await asyncio.sleep(0)  # the aborted transports close their sockets in the next turn
        await asyncio.sleep(0)

    async def open(self, label: str) -> Peer:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, limit=READ_LIMIT), TIMEOUT
        )
        peer = Peer(label, reader, writer)
        self.peers.append(peer)
        return peer

    async def join(self, name: str) -> tuple[Peer, Event]:
        """A JSON member that has read its banner and its `welcome`."""
        peer = await self.open(name)
        peer.send(hello(name))
        assert not (await peer.line()).startswith(b"{")  # the banner
        welcome = await peer.expect("welcome")
        assert welcome["name"] == name
        return peer, welcome

    async def watcher(self, name: str = "watcher") -> Watcher:
        watcher = Watcher(*await self.join(name))
        self.watchers.append(watcher)
        return watcher

    def never_reader(self, name: str) -> socket.socket:
        """A member with the smallest receive buffer that sends `hello` and then never reads."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # before connecting: the window
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", self.port))  # loopback: the kernel completes it at once
        sock.sendall(json_line(hello(name)))
        return sock

    def connections(self) -> Callable[[], int]:
        server = self.running.server
        assert server is not None
        return lambda: len(server.connections)

    def room(self, attribute: str) -> Callable[[], Any]:
        server = self.running.server
        assert server is not None
        return lambda: getattr(server.lobby, attribute)

    async def still_serves(self, watcher: Watcher, last_seq: int) -> None:
        """A newcomer joins and speaks: the watcher sees both, the message with the next seq."""
        peer, _ = await self.join("newcomer")
        acked = await peer.say_all("newcomer", [("still here", "after")])
        assert list(acked) == [last_seq + 1]
        await watcher.until(
            lambda: [m["seq"] for m in watcher.of("message")[-1:]] == [last_seq + 1],
            "the newcomer's message",
        )
        assert watcher.of("message")[-1]["text"] == "still here"
        assert watcher.of("joined")[-1]["name"] == "newcomer"


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[stress] {text}")
