"""One client's connection: its codec, its transport, its outbox, and the task that reads it.

A member reads its peer's bytes, turns them into events with its codec, and hands each to its
`Hub` (the server); it writes what it is given without ever awaiting the peer.  It knows the
server only through `Hub`, a handful of questions and requests, and the room's writes only
through its `Fanout`.  Reading is paced by `flood` (lines and bytes, per member and per
address): while it waits it does not read, so a flooder's own TCP window fills and nothing it
sent is lost.  A member whose queued bytes pass `outgoing_limit` has stopped reading and is
dropped with reason `slow` (as `websockets.broadcast` does), so nobody waits for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import Protocol

from tcpchat import sockets
from tcpchat.defaults import READ_CHUNK, SECONDS
from tcpchat.protocol import (
    KIB,
    Event,
    HistoryPage,
    Invalid,
    LeaveReason,
    Message,
    Mode,
    Results,
    ServerEvent,
    Shutdown,
    Welcome,
)
from tcpchat.server.config import ServerConfig
from tcpchat.server.fanout import Fanout
from tcpchat.server.flood import FloodControl
from tcpchat.server.watch import ReadWatch
from tcpchat.words import duration

FLUSH_AT = 64 * KIB  # an outbox this full goes to the kernel at once, not at the end of the turn
CLOSE_GRACE = 10 * SECONDS  # how long a closing connection may take to flush before it is cut
# A person's client (nc, telnet) does not end at the end of the stream: it waits for more to send.
# Once it has acknowledged our last words, it gets this long to show them, then a reset ends it.
LAST_WORDS_SHOWN = 0.2 * SECONDS
LAST_WORDS_UNKNOWN = 2 * SECONDS  # where the system cannot tell what was acknowledged
DELIVERY_POLL = 0.02 * SECONDS
IDLE_WARNING = 60 * SECONDS  # an idle member is warned this long (at most half the timeout) before

log = logging.getLogger("tcpchat.server")


class Codec(Protocol):
    """Where a connection's bytes become events and events become bytes, one per connection.

    `tcpchat.protocol`'s server codec reads lines (JSON or plain); `tcpchat.server.web`'s reads
    WebSocket frames.
    """

    @property
    def mode(self) -> Mode: ...

    def receive_data(self, data: bytes) -> Iterable[Event | Invalid]:
        """The events in `data`, which may end in the middle of one (kept for the next call)."""

    def encode(self, event: ServerEvent) -> bytes:
        """One event as the peer's mode writes it."""

    def ask_password(self, name: str) -> None:
        """Plain mode: take the next line as the password for `name`."""

    def greeting(self, server: str, members: int) -> bytes:
        """What the server says first (the banner; nothing over WebSocket)."""

    def data_to_send(self) -> bytes:
        """Bytes the framing must send back after what it received (a WebSocket pong)."""

    def closing(self) -> bytes:
        """The framing's last words before the connection ends (a WebSocket close frame)."""


class Hub(Protocol):
    """What a member asks of the server it belongs to (`ChatServer` is one)."""

    @property
    def stopping(self) -> bool:
        """The server is shutting down: closing quickly matters more than closing gently."""

    def room_size(self, member: Member) -> int:
        """Members in the room `member` joins or has joined (the banner tells them)."""

    def has_joined(self, member: Member) -> bool: ...

    def name_of(self, member: Member) -> str | None: ...

    def handle(self, member: Member, event: Event | Invalid) -> None:
        """One event read from `member`; its answers are written before this returns."""

    def leave(self, member: Member, reason: LeaveReason) -> None:
        """Take `member` out of its room and tell the others (nothing if it never joined)."""

    def tell(self, member: Member, text: str) -> None:
        """A private word from the server to a member (an idle warning)."""


class Member:
    """One client: its codec, its transport, its outbox, and the task that reads it.

    A member of the room once it has joined; before that (and after it leaves) a connection the
    room does not count, which the same object serves.
    """

    # Thousands are idle at once: slots keep each a few hundred bytes smaller than a dict would.
    __slots__ = (
        "__weakref__",
        "_cut_timer",
        "_cutting",
        "_largest_write",
        "_outbox",
        "_outbox_size",
        "codec",
        "config",
        "deadline",
        "done",
        "fanout",
        "host",
        "hub",
        "last_active",
        "loop",
        "pace",
        "password_checked",
        "peer",
        "reader",
        "transport",
        "turn_index",
        "turn_own",
        "warned",
        "watch",
        "writer",
    )

    def __init__(
        self,
        hub: Hub,
        config: ServerConfig,
        codec: Codec,
        fanout: Fanout,
        flood: FloodControl,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.hub = hub
        self.config = config
        self.codec = codec
        # The writes of the room it joins: the turn's broadcasts it must not overtake.
        self.fanout = fanout
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        peername = writer.get_extra_info("peername")
        self.peer = sockets.format_address(peername)
        self.host = peer_host(peername)
        self.loop = asyncio.get_running_loop()
        # The last message or command (pings do not count) and whether the idle warning went out.
        self.last_active = self.loop.time()
        self.warned = False
        self._cut_timer: asyncio.TimerHandle | None = None
        # Until a name is chosen, then (with an idle timeout) until the idle warning or removal.
        self.deadline = self.loop.time() + config.registration_timeout
        self.watch = ReadWatch(self.loop, self._read_timeout)
        self._cutting: asyncio.Task[None] | None = None  # a plain connection's end (`close`)
        # None with rate 0: flooding is not slowed (benchmarks, trusted bots).
        self.pace = flood.pace(self.host)
        self.done = False
        # The right password was given on this connection (a later `hello` for another name
        # need not give it again).
        self.password_checked = False
        # Bytes written during one turn of the event loop go out in one send (see `write`).
        self._outbox: list[bytes] = []
        self._outbox_size = 0
        self._largest_write = 0
        # How many of the turn's broadcasts this member has in its outbox already; -1 while it
        # is not a member (they are not for it).
        self.turn_index = -1
        # Its own bytes written meanwhile, each with its place among the turn's broadcasts: they
        # go out with them (`Fanout.end_turn`), or with the next flush, whichever comes first.
        self.turn_own: list[tuple[int, bytes]] | None = None

    @property
    def name(self) -> str | None:
        return self.hub.name_of(self)

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer without waiting; past the limit the member is `slow`.

        The bytes go to the transport at the end of this turn of the event loop (or as soon as
        FLUSH_AT bytes are waiting), together with whatever else this member gets meanwhile: a
        burst of messages costs one system call per member, not one per message and member.
        """
        if self.done:
            return
        places = len(self.fanout.turn.entries)
        if 0 <= self.turn_index < places:  # after what went to everyone before it
            own = self.turn_own
            if own is None:
                own = self.turn_own = []
                self.loop.call_soon(self.flush)  # at once, even while the turn gathers
            own.append((places, data))
            return
        self.queue(data, len(data))

    def queue(self, data: bytes, largest: int) -> None:
        """Add to the outbox; `largest` is the longest single event in `data`."""
        outbox = self._outbox
        if not outbox:
            self.loop.call_soon(self.flush)
        outbox.append(data)
        if largest > self._largest_write:
            self._largest_write = largest
        self._outbox_size += len(data)
        if self._outbox_size >= FLUSH_AT:
            self.flush()

    def take_broadcasts(self, data: bytes, largest: int) -> None:
        """The turn's broadcasts, all of them and joined once for every member alike; sent now."""
        if self.done:
            return
        if largest > self._largest_write:
            self._largest_write = largest
        if self._outbox:
            self._outbox.append(data)
            self.flush()
        else:  # the common case: straight to the transport, nothing scheduled
            self._hand_over(data)

    def flush(self) -> None:
        """Hand everything queued to the transport (see `_hand_over`)."""
        if self.turn_own is not None:  # the turn has not ended yet: catch up to now
            self.fanout.catch_up(self)
        outbox = self._outbox
        if not outbox:
            return
        data = b"".join(outbox)
        outbox.clear()
        self._outbox_size = 0
        self._hand_over(data)

    def _hand_over(self, data: bytes) -> None:
        """Write to the transport (the kernel takes what it can at once), unless the member
        left too much unread: then it is dropped as `slow`.

        Only bytes the kernel would not take count: the member left them unread.  The largest
        single event is allowed on top, so one event of any size (a long `welcome`) fits.
        """
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.config.outgoing_limit + self._largest_write:
            self.fanout.drop_later(self, LeaveReason.SLOW)
            return
        transport.write(data)

    def fit_history(self, welcome: Welcome, *, resuming: bool = False) -> Welcome:
        """`welcome` with the newest of its history that fits this member's send buffer (a
        resuming member is told, with `gap`, that some of what it missed was left out).

        A welcome is written whole, whether or not the member reads it; were its history not
        bounded too, a crowd of members that never read would each hold a long history in the
        server's memory and the kernel's for as long as they stay.
        """
        history = welcome.history
        kept = self._fitting(reversed(history), len(history))
        gap = welcome.gap or (resuming and kept < len(history))
        return dataclasses.replace(welcome, history=history[len(history) - kept :], gap=gap)

    def _fitting(self, newest_first: Iterable[Message], count: int) -> int:
        """How many of `count` messages, from the newest, fit this member's send buffer."""
        budget = self.config.outgoing_limit
        messages = list(newest_first)
        # Cheap and sure: no character of a message takes more than 5 bytes in either mode (4 in
        # UTF-8, a line break and its indent 5 in plain mode), and 256 cover the rest of its line.
        if sum(len(message.text) for message in messages) * 5 + 256 * count <= budget:
            return count
        used = kept = 0
        for message in messages:
            used += len(self.codec.encode(message))
            if used > budget:
                break
            kept += 1
        return kept

    def send(self, event: ServerEvent) -> None:
        """Write one event; a page of history or of search results is cut, as a welcome's
        history is, to what this member's send buffer holds (the newest first; `more` then
        says older ones exist)."""
        if isinstance(event, HistoryPage) and event.messages:
            page = event.messages
            kept = self._fitting(reversed(page), len(page))
            if kept < len(page):
                event = dataclasses.replace(event, messages=page[len(page) - kept :], more=True)
        elif isinstance(event, Results) and event.messages:
            kept = self._fitting(event.messages, len(event.messages))
            if kept < len(event.messages):
                event = dataclasses.replace(event, messages=event.messages[:kept])
        self.write(self.codec.encode(event))

    def close(self, *, abort: bool = False) -> None:
        """Stop taking events and send what is queued, then end our side (or cut at once).

        Our side ends with a half-close: the peer gets everything, then end of file, while
        `finish_closing` goes on reading (see there).  A plain connection is then reset once the
        peer has acknowledged everything (`_cut_once_delivered`): nc does not end otherwise.
        """
        self.done = True
        if abort:
            sockets.reset(self.transport)
            return
        own = self.turn_own
        if own is not None:  # its own last bytes, after the broadcasts that came before them
            self.fanout.catch_up(self, upto=own[-1][0])
        if last_words := self.codec.closing():
            self._outbox.append(last_words)
        self.flush()
        if self.transport.is_closing():
            return
        if self.codec.mode is Mode.PLAIN:
            if self.transport.can_write_eof():
                self._write_eof()
            if self._cutting is None:
                self._cutting = self.loop.create_task(self._cut_once_delivered(CLOSE_GRACE))
            return
        if self.hub.stopping or not self.transport.can_write_eof():
            self.writer.close()  # all of it: while stopping, a quick exit matters more
            return
        self._write_eof()

    def _write_eof(self) -> None:
        try:
            self.transport.write_eof()
        except OSError:  # the peer is already gone (reset, not connected)
            sockets.reset(self.transport)

    async def _cut_once_delivered(self, grace: float) -> None:
        """Reset the connection once the peer has acknowledged all it was sent (and had a moment
        to show it), or after `grace`: how a plain connection ends, so that nc exits at once."""
        transport = self.transport
        sock = transport.get_extra_info("socket")
        loop = self.loop
        deadline = loop.time() + grace
        while not transport.is_closing() and loop.time() < deadline:
            if transport.get_write_buffer_size() == 0:
                left = None if sock is None else sockets.unacknowledged(sock)
                if left == 0:
                    await asyncio.sleep(LAST_WORDS_SHOWN)
                    break
                if left is None:
                    await asyncio.sleep(min(LAST_WORDS_UNKNOWN, max(0.0, deadline - loop.time())))
                    break
            await asyncio.sleep(DELIVERY_POLL)
        sockets.reset(transport)

    async def finish_closing(self, grace: float | None = None) -> None:
        """Close, let the peer take what is left within `grace` (CLOSE_GRACE unless given),
        then cut the connection.

        Until the peer closes too, what it still sends is read and dropped: a socket closed with
        unread input makes the kernel reset the connection, and a reset can destroy our last
        words (the `error` before a fatal close, `shutdown`) on their way.  Without the deadline
        a peer that never reads, or never closes, would hold its socket for ever.
        """
        if not self.done:
            self.close()
        if self._cutting is not None:  # a plain connection: it ends once our words arrived
            await self._cutting
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (CLOSE_GRACE if grace is None else grace)
        try:
            while not self.transport.is_closing():
                remaining = max(0.0, deadline - loop.time())
                if not await asyncio.wait_for(self.reader.read(READ_CHUNK), remaining):
                    break
            if not self.transport.is_closing():  # closing twice upsets asyncio's TLS transport
                self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), max(0.0, deadline - loop.time()))
        except (asyncio.TimeoutError, OSError):
            sockets.reset(self.transport)

    async def run(self) -> None:
        """Read lines until the peer leaves, times out, or the server stops."""
        hub = self.hub
        self.write(self.codec.greeting(self.config.name, hub.room_size(self)))
        loop = self.loop
        watch = self.watch
        watch.arm()  # stopped by `forget_timers`, however the connection ends
        while not self.done:
            try:
                data = await watch.read(self.reader, READ_CHUNK)
            except asyncio.TimeoutError:
                if self.done or self._on_timeout():
                    return
                watch.arm()
                continue
            except OSError:
                data = b""
            if self.done:  # ended from outside (kicked, banned) while this read waited
                return
            if not data:  # the peer closed (or half-closed): answer what it sent, then close
                hub.leave(self, LeaveReason.DISCONNECTED)
                self.close()
                return
            pace = self.pace
            if pace is not None and (delay := pace.for_bytes(len(data))):
                await asyncio.sleep(delay)  # nothing more is read meanwhile: TCP pushes back
                if self.done:
                    return
            for event in self.codec.receive_data(data):
                if pace is not None and (delay := pace.for_line()):
                    await asyncio.sleep(delay)
                if self.done:
                    return
                if not hub.has_joined(self) and loop.time() > self.deadline:
                    self._timed_out()  # many lines in one read must not stretch the deadline
                    return
                hub.handle(self, event)
            if reply := self.codec.data_to_send():
                self.write(reply)

    def _read_timeout(self) -> float | None:
        """Seconds until the next thing to do if nothing arrives: the registration deadline for
        a stranger, the idle warning or removal for a member (None: wait for ever)."""
        now = self.loop.time()
        if not self.hub.has_joined(self):
            return max(0.0, self.deadline - now)
        idle_timeout = self.config.idle_timeout
        if idle_timeout is None:
            return None
        due = idle_timeout if self.warned else idle_timeout - _warning_lead(idle_timeout)
        return max(0.0, self.last_active + due - now)

    def _on_timeout(self) -> bool:
        """A read timed out: warn an idle member, or close; True when the connection is over."""
        idle_timeout = self.config.idle_timeout
        if not self.hub.has_joined(self) or idle_timeout is None:
            self._timed_out()
            return True
        idle = self.loop.time() - self.last_active
        if idle >= idle_timeout:
            self._timed_out()
            return True
        lead = _warning_lead(idle_timeout)
        if not self.warned and idle >= idle_timeout - lead:
            self.warned = True
            self.hub.tell(
                self,
                f"You have been idle for {duration(idle)}; you will be disconnected in "
                f"{duration(idle_timeout - idle)} unless you send a message or a command.",
            )
        return False

    def mark_active(self) -> None:
        self.last_active = self.loop.time()
        self.warned = False

    def end(self, message: str, reason: LeaveReason = LeaveReason.KICKED) -> None:
        """Close from outside the reading task (kick, ban): say why, and cut the connection
        after CLOSE_GRACE if the peer neither closes nor sends anything (its read would wait
        for ever otherwise)."""
        if self.done:
            return
        self.close_with(message, reason)
        if not self.transport.is_closing():
            self._cut_timer = self.loop.call_later(CLOSE_GRACE, sockets.reset, self.transport)

    def forget_timers(self) -> None:
        self.watch.stop()
        if self._cut_timer is not None:
            self._cut_timer.cancel()
            self._cut_timer = None
        if self._cutting is not None:
            self._cutting.cancel()

    def _timed_out(self) -> None:
        if self.hub.has_joined(self):
            log.info("%s (%s) was idle too long", self.name, self.peer)
            self.hub.leave(self, LeaveReason.TIMEOUT)
            idle_timeout = self.config.idle_timeout or 0
            message = f"You were idle for {duration(idle_timeout)}; closing the connection."
        else:
            log.debug("%s did not join in time", self.peer)
            message = (
                f"No name was chosen within {self.config.registration_timeout:g} seconds; closing."
            )
        self.close_with(message, LeaveReason.TIMEOUT)

    def close_with(self, message: str, reason: LeaveReason | None = None) -> None:
        """Close after one sentence of why: `shutdown` in JSON mode, a `!` line in plain mode.

        `reason` tells a JSON client it was removed (kicked, timed out) rather than the server
        stopping, so that it does not reconnect.
        """
        if self.codec.mode in (Mode.JSON, Mode.WEB):
            self.send(Shutdown(message=message, reason=reason))
        else:
            self.write(f"! {message}\n".encode())
        self.close()


def peer_host(peername: object) -> str:
    """The address limits and bans apply to: the peer's IP (a test's socket pair has none)."""
    return str(peername[0]) if isinstance(peername, tuple) else sockets.format_address(peername)


def _warning_lead(idle_timeout: float) -> float:
    return min(IDLE_WARNING, idle_timeout / 2)
