"""One benchmark member: an asyncio Protocol that joins, counts what it receives, and writes
without awaiting; and the tally all receivers share."""

from __future__ import annotations

import asyncio
import time

from tcpchat.bench.dialects import BenchError, Dialect

# --- one client --------------------------------------------------------------------------------


class Tally:
    """What the receivers saw, all together."""

    def __init__(self) -> None:
        self.deliveries = 0
        self.lost = 0
        self.reordered = 0
        self.duplicates = 0  # messages, and acks of an id acknowledged already (or never sent)
        self.seq_gaps = 0
        self.acknowledged = 0  # ids acknowledged (once each)
        self.latencies_ns: list[int] = []
        self.changed = asyncio.Event()


class BenchClient(asyncio.Protocol):
    """A member: joins, counts what it receives, and writes without awaiting."""

    def __init__(self, nick: str, dialect: Dialect, tally: Tally) -> None:
        self.nick = nick
        self.dialect = dialect
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.from_sender: dict[int, int] = {}  # sender -> messages received from it
        self._next_number: dict[int, int] = {}
        self._last_seq: int | None = None
        self._buffer = b""
        self.awaiting: set[str] = set()  # ids sent and not acknowledged yet
        self._said = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.dialect.hello(self.nick))

    def data_received(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self.dialect.on_line(self, line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("the server closed the connection.")
        if not self.closed.done():
            self.closed.set_result(None)

    # events from the dialect

    def on_joined(self) -> None:
        if not self.joined.done():
            self.joined.set_result(None)

    def on_message(self, sender: int, number: int, sent_ns: int, seq: int | None) -> None:
        tally = self.tally
        tally.latencies_ns.append(time.perf_counter_ns() - sent_ns)
        tally.deliveries += 1
        self.received += 1
        self.from_sender[sender] = self.from_sender.get(sender, 0) + 1
        expected = self._next_number.get(sender, 0)
        if number == expected:
            self._next_number[sender] = number + 1
        elif number > expected:
            tally.lost += number - expected  # counted back if they arrive late
            self._next_number[sender] = number + 1
        else:
            tally.reordered += 1
            tally.lost -= 1
        if seq is not None:
            self.on_own_seq(seq)
        tally.changed.set()

    def on_ack(self, request_id: str | None, seq: int) -> None:
        """The ack of one of our messages: its place in `seq`, and its id acknowledged once."""
        if request_id is not None:
            try:
                self.awaiting.remove(request_id)
            except KeyError:  # acknowledged before (its seq counted then), or never sent
                self.tally.duplicates += 1
                return
            self.tally.acknowledged += 1
            self.tally.changed.set()
        self.on_own_seq(seq)

    def on_own_seq(self, seq: int) -> None:
        """`seq` must go up by one whether a message came to us or was ours (its ack)."""
        if self._last_seq is not None and seq != self._last_seq + 1:
            if seq <= self._last_seq:
                self.tally.duplicates += 1
            else:
                self.tally.seq_gaps += seq - self._last_seq - 1
        self._last_seq = seq

    def fail(self, why: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(BenchError(why))

    def give_up_joining(self) -> None:
        """Closed on purpose before it joined (another member's connection failed): nobody
        waits for this join any more, and its end is not an error to report."""
        if not self.joined.done():
            self.joined.cancel()

    def say(self, text: str) -> None:
        """Send a message; with the dialect's `ids`, under an id of its own, awaited in an ack."""
        request_id = None
        if self.dialect.ids:
            self._said += 1
            request_id = f"{self.nick}.{self._said}"  # the nick is the run's and the member's
            self.awaiting.add(request_id)
        self.write(self.dialect.say(text, request_id))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, polite: bool = True) -> None:
        self.give_up_joining()
        if self.transport is not None and not self.transport.is_closing():
            if polite:
                self.transport.write(self.dialect.bye())
            self.transport.close()
