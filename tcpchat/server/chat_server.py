"""The asyncio chat server: accept, read and write each connection, time out, shut down.

Sockets stop here.  Parsing and rendering are `protocol`'s job and the rules of the room are
`room`'s; this module moves bytes between them and the network and decides nothing about chat.

Writing: nothing awaits a peer.  An event to everyone is encoded once and kept in the turn's
list of broadcasts; at the end of the event-loop turn the list is joined once and handed to every
member in one write (a member that got something of its own meanwhile, or is left out of one,
gets its own copy in the right order).  So a burst costs one system call per member and almost no
Python per member and message.  A member whose queued bytes pass `outgoing_limit`
has stopped reading and is dropped with reason `slow` (as `websockets.broadcast` does), so nobody
waits for it.  Reading: one task per connection, paced by `flood` (lines and bytes, per member
and per address); while it waits it does not read, so a flooder's own TCP window fills and
nothing it sent is lost.  Accepting: `accept` hands over bare sockets; the door (`guard`)
decides before any TLS handshake, and handshakes share fair slots.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tcpchat import sockets
from tcpchat.protocol import (
    DEFAULT_LINE_LIMIT,
    DEFAULT_MAX_TEXT,
    DEFAULT_PORT,
    KIB,
    PLAIN_HELP,
    RESERVED_NAME,
    Bye,
    Dm,
    Error,
    ErrorCode,
    Event,
    Hello,
    HelpRequest,
    Invalid,
    LeaveReason,
    Message,
    Mode,
    Nick,
    Ping,
    Pong,
    Private,
    Renamed,
    Say,
    ServerCodec,
    ServerEvent,
    Shutdown,
    Welcome,
    Who,
    banner,
    encode_json,
    render_plain,
)
from tcpchat.server.accept import Listener
from tcpchat.server.flood import FloodControl, FloodLimits
from tcpchat.server.guard import AddressGuard, GuardLimits, HandshakeSlots, address_key
from tcpchat.server.room import Delivery, Room, RoomLimits

SECONDS = 1.0
READ_CHUNK = 64 * KIB
FLUSH_AT = 64 * KIB  # an outbox this full goes to the kernel at once, not at the end of the turn
MAX_HANDSHAKES = 256  # TLS handshakes in progress at once (see HandshakeSlots)
MAX_HANDSHAKES_PER_ADDRESS = 16
MAX_TLS_REFUSING = 16  # refused TLS connections told why at once (each costs a handshake)
CLOSE_GRACE = 10 * SECONDS  # how long a closing connection may take to flush before it is cut
REFUSE_GRACE = 2 * SECONDS  # the same for a connection refused at the door (it never joined)
# A person's client (nc, telnet) does not end at the end of the stream: it waits for more to send.
# Once it has acknowledged our last words, it gets this long to show them, then a reset ends it.
LAST_WORDS_SHOWN = 0.2 * SECONDS
LAST_WORDS_UNKNOWN = 2 * SECONDS  # where the system cannot tell what was acknowledged
DELIVERY_POLL = 0.02 * SECONDS
REFUSAL_LOG_EVERY = 60 * SECONDS
MAX_REFUSING = 256  # refused connections being told why at once; past that, cut without a word
# In a room this big, events to everyone are gathered for GATHER_TIME before they are written: a
# crowd joining (each join is news to every member) costs one system call per member per few
# milliseconds instead of per join.  Smaller rooms get every event at once.
GATHER_FROM = 500
GATHER_TIME = 0.004 * SECONDS
IDLE_WARNING = 60 * SECONDS  # an idle member is warned this long (at most half the timeout) before

log = logging.getLogger("tcpchat.server")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the operator can set, with units in the defaults."""

    host: str | None = None
    port: int = DEFAULT_PORT
    name: str = field(default_factory=socket.gethostname)
    motd: str | None = None
    max_text: int = DEFAULT_MAX_TEXT
    max_clients: int | None = None
    history: int = 50
    password: str | None = None
    line_limit: int = DEFAULT_LINE_LIMIT
    registration_timeout: float = 60 * SECONDS
    idle_timeout: float | None = None
    # Room for ~60 of the longest messages, or hundreds of ordinary ones, before `slow`.
    outgoing_limit: int = 256 * KIB
    # Lines a member may send per second, and in one burst, before its reading is slowed (0: never).
    rate: float = 20.0
    burst: int = 60
    # Bytes a second a member may send (in bursts of four seconds' worth); 0 for lines only.
    # An address may send three times the lines and twice the bytes of one member.
    byte_rate: float = 16 * KIB
    shutdown_grace: float = 1.5 * SECONDS
    # Per client address (an IPv6 /64 counts as one address): connections open at once, and new
    # connections a minute.  None turns a limit off.
    max_per_address: int | None = 32
    connect_rate: int | None = 60
    # Wrong passwords from one address (in ten minutes) before it must wait `auth_lockout`.
    auth_failures: int = 5
    auth_lockout: float = 60 * SECONDS
    # Wrong passwords a minute from all addresses together before only addresses that once gave
    # the right one may try (None: no such limit).
    global_auth_failures: int | None = 30
    # With a context, every connection is TLS (tcpchat.tls makes one from a certificate).
    tls: ssl.SSLContext | None = None
    # A real client finishes its handshake in a few round trips; a socket still silent then is
    # cut, so that idle sockets cannot hold the handshake slots.
    handshake_timeout: float = 10 * SECONDS

    def guard_limits(self) -> GuardLimits:
        return GuardLimits(
            max_per_address=self.max_per_address,
            connect_rate=self.connect_rate,
            auth_failures=self.auth_failures,
            auth_lockout=self.auth_lockout,
            global_auth_failures=self.global_auth_failures,
        )

    def flood_limits(self) -> FloodLimits:
        return FloodLimits(rate=self.rate, burst=self.burst, byte_rate=self.byte_rate)

    def room_limits(self) -> RoomLimits:
        return RoomLimits(
            server_name=self.name,
            max_text=self.max_text,
            history=self.history,
            max_members=self.max_clients,
            motd=self.motd,
            password=self.password,
        )


class Outgoing:
    """One event encoded at most once per mode, however many members it goes to."""

    __slots__ = ("_json", "_plain", "event")

    def __init__(self, event: ServerEvent) -> None:
        self.event = event
        self._json: bytes | None = None
        self._plain: bytes | None = None

    def bytes_for(self, mode: Mode) -> bytes:
        if mode is Mode.JSON:
            if self._json is None:
                self._json = encode_json(self.event)
            return self._json
        if self._plain is None:
            self._plain = render_plain(self.event)
        return self._plain


CONSOLE_LINES = 3


def console_text(text: str) -> str:
    """A message for the console: continuation lines indented (so none passes for a console line
    of ours) and at most CONSOLE_LINES of them (so one paste cannot flood the operator)."""
    lines = text.split("\n")
    shown = "\n    ".join(lines[:CONSOLE_LINES])
    if len(lines) > CONSOLE_LINES:
        shown += f"\n    (+{len(lines) - CONSOLE_LINES} more lines)"
    return shown


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Connection:
    """One client: its codec, its transport, and the task that reads it."""

    def __init__(
        self, server: ChatServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.codec = ServerCodec(server.config.line_limit)
        peername = writer.get_extra_info("peername")
        self.peer = sockets.format_address(peername)
        self.host = peer_host(peername)
        self.loop = asyncio.get_running_loop()
        # The last message or command (pings do not count) and whether the idle warning went out.
        self.last_active = self.loop.time()
        self.warned = False
        self._cut_timer: asyncio.TimerHandle | None = None
        self._cutting: asyncio.Task[None] | None = None  # a plain connection's end (`close`)
        # None with rate 0: flooding is not slowed (benchmarks, trusted bots).
        self.pace = server.flood.pace(self.host)
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

    @property
    def name(self) -> str | None:
        return self.server.room.name_of(self)

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer without waiting; past the limit the member is `slow`.

        The bytes go to the transport at the end of this turn of the event loop (or as soon as
        FLUSH_AT bytes are waiting), together with whatever else this member gets meanwhile: a
        burst of messages costs one system call per member, not one per message and member.
        """
        if self.done:
            return
        if 0 <= self.turn_index < len(self.server.turn.entries):
            self.catch_up()  # what went to everyone before this comes first
        self._queue(data, len(data))

    def _queue(self, data: bytes, largest: int) -> None:
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

    def catch_up(self) -> None:
        """Queue the turn's broadcasts this member has not had yet, in order."""
        entries = self.server.turn.entries
        mode = self.codec.mode
        for outgoing, exclude in entries[self.turn_index :]:
            if exclude is not self:
                data = outgoing.bytes_for(mode)
                self._queue(data, len(data))
        self.turn_index = len(entries)

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
        if (
            transport.get_write_buffer_size()
            > self.server.config.outgoing_limit + self._largest_write
        ):
            self.server.drop_later(self, LeaveReason.SLOW)
            return
        transport.write(data)

    def send(self, event: ServerEvent) -> None:
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
        self.flush()
        if self.transport.is_closing():
            return
        if self.codec.mode is Mode.PLAIN:
            if self.transport.can_write_eof():
                self._write_eof()
            if self._cutting is None:
                self._cutting = self.loop.create_task(self._cut_once_delivered(CLOSE_GRACE))
            return
        if self.server.stopping or not self.transport.can_write_eof():
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

    async def finish_closing(self, grace: float = CLOSE_GRACE) -> None:
        """Close, let the peer take what is left within `grace`, then cut the connection.

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
        deadline = loop.time() + grace
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
        config = self.server.config
        self.write(banner(config.name, self.server.room.count))
        loop = self.loop
        deadline = loop.time() + config.registration_timeout
        while not self.done:
            try:
                data = await asyncio.wait_for(
                    self.reader.read(READ_CHUNK), self._read_timeout(deadline)
                )
            except asyncio.TimeoutError:
                if self.done or self._on_timeout(deadline):
                    return
                continue
            except OSError:
                data = b""
            if self.done:  # ended from outside (kicked, banned) while this read waited
                return
            if not data:  # the peer closed (or half-closed): answer what it sent, then close
                self.server.leave(self, LeaveReason.DISCONNECTED)
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
                if not self.server.room.is_member(self) and loop.time() > deadline:
                    self._timed_out()  # many lines in one read must not stretch the deadline
                    return
                self.server.handle(self, event)

    def _read_timeout(self, deadline: float) -> float | None:
        """Seconds until the next thing to do if nothing arrives: the registration deadline for
        a stranger, the idle warning or removal for a member (None: wait for ever)."""
        now = self.loop.time()
        if not self.server.room.is_member(self):
            return max(0.0, deadline - now)
        idle_timeout = self.server.config.idle_timeout
        if idle_timeout is None:
            return None
        due = idle_timeout if self.warned else idle_timeout - _warning_lead(idle_timeout)
        return max(0.0, self.last_active + due - now)

    def _on_timeout(self, deadline: float) -> bool:
        """A read timed out: warn an idle member, or close; True when the connection is over."""
        idle_timeout = self.server.config.idle_timeout
        if not self.server.room.is_member(self) or idle_timeout is None:
            self._timed_out()
            return True
        idle = self.loop.time() - self.last_active
        if idle >= idle_timeout:
            self._timed_out()
            return True
        lead = _warning_lead(idle_timeout)
        if not self.warned and idle >= idle_timeout - lead:
            self.warned = True
            self.server.dispatch(
                self.server.room.notify(
                    self,
                    f"You have been idle for {_duration(idle)}; you will be disconnected in "
                    f"{_duration(idle_timeout - idle)} unless you send a message or a command.",
                    self.server.clock(),
                )
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
        if self._cut_timer is not None:
            self._cut_timer.cancel()
            self._cut_timer = None
        if self._cutting is not None:
            self._cutting.cancel()

    def _timed_out(self) -> None:
        if self.server.room.is_member(self):
            log.info("%s (%s) was idle too long", self.name, self.peer)
            self.server.leave(self, LeaveReason.TIMEOUT)
            idle_timeout = self.server.config.idle_timeout or 0
            message = f"You were idle for {_duration(idle_timeout)}; closing the connection."
        else:
            log.debug("%s did not join in time", self.peer)
            message = f"No name was chosen within {self.server.config.registration_timeout:g} seconds; closing."
        self.close_with(message, LeaveReason.TIMEOUT)

    def close_with(self, message: str, reason: LeaveReason | None = None) -> None:
        """Close after one sentence of why: `shutdown` in JSON mode, a `!` line in plain mode.

        `reason` tells a JSON client it was removed (kicked, timed out) rather than the server
        stopping, so that it does not reconnect.
        """
        if self.codec.mode is Mode.JSON:
            self.send(Shutdown(message=message, reason=reason))
        else:
            self.write(f"! {message}\n".encode())
        self.close()


def peer_host(peername: object) -> str:
    """The address limits and bans apply to: the peer's IP (a test's socket pair has none)."""
    return str(peername[0]) if isinstance(peername, tuple) else sockets.format_address(peername)


def _warning_lead(idle_timeout: float) -> float:
    return min(IDLE_WARNING, idle_timeout / 2)


def _duration(seconds: float) -> str:
    """`45 seconds`, `1 minute`, `10 minutes`: how a person says an idle time."""
    if seconds < 90:
        count, unit = max(1, round(seconds)), "second"
    else:
        count, unit = round(seconds / 60), "minute"
    return f"{count} {unit}{'' if count == 1 else 's'}"


class ChatServer:
    """The room plus the live connections; `serve()` runs it until `shutdown_trigger` completes."""

    def __init__(self, config: ServerConfig, clock: Callable[[], datetime] = _now) -> None:
        self.config = config
        self.room = Room(config.room_limits())
        self.turn = TurnBroadcasts()
        self.guard = AddressGuard(config.guard_limits())
        self.flood = FloodControl(config.flood_limits())
        self._listener = Listener(self._admit)
        self._refusing = 0
        self._handshakes: HandshakeSlots[asyncio.Task[None]] = HandshakeSlots(
            MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDRESS
        )
        self._refusals_logged: dict[str, float] = {}
        self.clock = clock
        self.connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending_drops: collections.deque[tuple[Connection, LeaveReason]] = collections.deque()
        self._dropping = False
        self.stopping = False
        self.ports: list[int] = []
        self.addresses: list[str] = []
        self.started = asyncio.Event()

    # --- serving -------------------------------------------------------------------------------

    async def serve(self, shutdown_trigger: Callable[[], Awaitable[object]]) -> None:
        """Listen, serve every connection, and return once `shutdown_trigger()` completes and
        the members have been told and flushed (hypercorn's design: tests stop it without signals)."""
        listeners = sockets.bind_sockets(self.config.host, self.config.port)
        self._listener.start(listeners)
        self.addresses = [sockets.format_address(s.getsockname()) for s in listeners]
        self.ports = sorted({s.getsockname()[1] for s in listeners})
        self.started.set()
        try:
            await shutdown_trigger()
        finally:
            await self._listener.close()
            await self._shut_down()

    async def _admit(self, sock: socket.socket) -> None:
        """One accepted socket: the door, then (with TLS) a fair handshake slot and the
        handshake, then served until it ends.

        The door (limits, bans) decides on the bare socket, before any handshake: a handshake
        costs memory and CPU, so a peer over its address's limits gets none for the asking.  TLS
        starts on a fresh transport, so nothing of the client's hello has been read before.
        """
        try:
            host = peer_host(sock.getpeername())
        except OSError:  # reset while it waited in the backlog
            sock.close()
            self._listener.freed()
            return
        sockets.enable_keepalive(sock)
        tls = self.config.tls
        refusal = None if self.stopping else self.guard.admit(host)
        told_why_at_most = MAX_REFUSING if tls is None else MAX_TLS_REFUSING
        if self.stopping or (refusal is not None and self._refusing >= told_why_at_most):
            sockets.reset_socket(sock)  # a flood: telling each one why would be its win
            sock.close()
            self._listener.freed()
            return
        task = asyncio.current_task()
        assert task is not None
        if tls is not None:
            evicted = self._handshakes.enter(host, task)
            if evicted is not None:  # slots are scarce: the oldest of the greediest address goes
                evicted.cancel()
        reader = asyncio.StreamReader(limit=READ_CHUNK * 2)
        handed_over = False

        def connected(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> Awaitable[None]:
            nonlocal handed_over
            handed_over = True
            return self._serve_connection(reader, writer, refusal)

        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: asyncio.StreamReaderProtocol(reader, connected),
                sock,
                ssl=tls,
                ssl_handshake_timeout=None if tls is None else self.config.handshake_timeout,
            )
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError, EOFError) as exc:
            if not handed_over:  # else the connection's own task closes and releases it
                log.debug("the connection of %s failed before it began: %r", host, exc)
                sockets.reset_socket(sock)  # its transport closes it, with a reset
                if refusal is None:
                    self.guard.release(host)
                self._listener.freed()
        finally:
            self._handshakes.leave(task)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: str | None
    ) -> None:
        """Serve a connection the door let in until it ends, or tell a refused one why."""
        task = asyncio.current_task()
        assert task is not None
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        self._tasks.add(task)
        try:
            try:
                if refusal is None:
                    await connection.run()
                    grace = CLOSE_GRACE
                else:
                    self._refusing += 1
                    self._log_refusal(connection, refusal)
                    connection.write(f"! {refusal}\n".encode())  # in place of the banner
                    connection.close()
                    grace = REFUSE_GRACE
            except Exception:
                log.exception("unexpected error on the connection of %s", connection.peer)
                self.leave(connection, LeaveReason.DISCONNECTED)
                self._fail(connection)
                grace = CLOSE_GRACE
            await connection.finish_closing(grace)
        except asyncio.CancelledError:
            # Cancelled by the shutdown deadline.  Ending normally keeps asyncio (3.11) from
            # logging a traceback for every cancelled connection.
            pass
        finally:
            if connection.pace is not None:
                self.flood.release(connection.host)
            if refusal is None:
                self.guard.release(connection.host)
            else:
                self._refusing -= 1
            connection.forget_timers()
            self.connections.discard(connection)
            self._tasks.discard(task)
            if not connection.transport.is_closing():
                connection.close(abort=True)
            self._listener.freed()

    def _log_refusal(self, connection: Connection, refusal: str) -> None:
        """One console line per address and minute; the rest at debug level (a flood of
        refusals must not become a flood of log lines, nor fill a disk)."""
        key = address_key(connection.host)
        now = time.monotonic()
        if now - self._refusals_logged.get(key, -REFUSAL_LOG_EVERY) >= REFUSAL_LOG_EVERY:
            if len(self._refusals_logged) >= 1024:
                self._refusals_logged.clear()
            self._refusals_logged[key] = now
            log.info(
                "refused %s: %s (more from this address within a minute are not shown)",
                connection.peer,
                refusal,
            )
        else:
            log.debug("refused %s: %s", connection.peer, refusal)

    def _fail(self, connection: Connection) -> None:
        message = (
            "The server hit an internal error on your connection and closed it; please reconnect."
        )
        connection.close_with(message)

    async def _shut_down(self) -> None:
        """Tell every member, flush with a deadline, then close whatever is left."""
        self.stopping = True
        for handshake in self._handshakes.holders():
            handshake.cancel()
        goodbye = Outgoing(Shutdown(message=f"The server {self.config.name} is shutting down."))
        count = self.room.count
        for connection in list(self.connections):
            connection.write(goodbye.bytes_for(connection.codec.mode))
            connection.close()
        log.info("server stopping; %d member%s disconnected", count, "" if count == 1 else "s")
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            for connection in list(self.connections):
                sockets.reset(connection.transport)
            if pending:
                await asyncio.wait(pending, timeout=0.5)

    # --- events --------------------------------------------------------------------------------

    def handle(self, connection: Connection, event: Event | Invalid) -> None:
        """One event from a connection; its answers go out before this returns."""
        try:
            self._handle(connection, event)
        except Exception:
            log.exception("error handling %r from %s", type(event).__name__, connection.peer)
            connection.send(
                Error(
                    ErrorCode.BAD_MESSAGE,
                    "The server could not handle that line because of an internal error.",
                )
            )
        self._run_drops()

    def _handle(self, connection: Connection, event: Event | Invalid) -> None:
        room = self.room
        now = self.clock()
        if isinstance(event, Invalid):
            connection.send(event.as_error())
            return
        if isinstance(event, Ping):
            connection.send(Pong(id=event.id))
            return  # a ping is a client's keepalive, not a person: it does not stop the idle clock
        connection.mark_active()
        if isinstance(event, Bye) and (
            room.is_member(connection) or connection.codec.mode is Mode.PLAIN
        ):  # `/quit` at the name prompt leaves; a JSON `bye` before `hello` is `not_joined`
            self.leave(connection, LeaveReason.QUIT)
            if connection.codec.mode is Mode.PLAIN:  # nc shows no sign of a close: say it
                connection.write(b"* Goodbye! You can close the connection now.\n")
            connection.close()
            return
        if isinstance(event, Hello):
            self._hello(connection, event)
            return
        if not room.is_member(connection):
            request_id = getattr(event, "id", None)
            connection.send(
                Error(ErrorCode.NOT_JOINED, "Send hello with your name first.", request_id)
            )
            return
        if isinstance(event, Say):
            deliveries = room.say(connection, event, now)
            if isinstance(deliveries[0].event, Message) and log.isEnabledFor(logging.INFO):
                log.info("%s: %s", room.name_of(connection), console_text(event.text))
        elif isinstance(event, Dm):
            deliveries = room.dm(connection, event, now)
            if isinstance(deliveries[0].event, Private):
                private = deliveries[0].event
                log.info("%s sent a private message to %s", private.sender, private.to)
                if connection.codec.mode is Mode.PLAIN:
                    deliveries.append(Delivery(private, (connection,)))  # the nc user's echo
        elif isinstance(event, Nick):
            deliveries = room.nick(connection, event, now)
            if isinstance(deliveries[0].event, Renamed):
                log.info("%s is now known as %s", deliveries[0].event.old, deliveries[0].event.new)
        elif isinstance(event, Who):
            deliveries = room.who(connection)
        elif isinstance(event, HelpRequest):
            connection.write(PLAIN_HELP.encode() + b"\n")
            return
        else:  # every client event is handled above; anything else is our bug
            raise TypeError(f"no handler for {event!r}")
        self.dispatch(deliveries)

    def _hello(self, connection: Connection, hello: Hello) -> None:
        room = self.room
        plain = connection.codec.mode is Mode.PLAIN
        needs_password = room.limits.password is not None and not connection.password_checked
        locked = self.guard.password_refused(connection.host) if needs_password else None
        if locked is not None:  # no guessing on connections opened before the lockout either
            connection.send(Error(ErrorCode.AUTH_FAILED, locked))
            connection.close()
            return
        if plain and needs_password and hello.password is None and not room.is_member(connection):
            # Whatever the name: whether it is free must not be told before the password.
            connection.codec.ask_password(hello.name)
            connection.write(b"Password:\n")
            return
        deliveries = room.join(
            connection, hello, self.clock(), password_checked=connection.password_checked
        )
        first = deliveries[0].event
        if isinstance(first, Welcome) and first.history:
            first = self._fit_history(connection, first)
            deliveries[0] = Delivery(first, deliveries[0].to)
        if isinstance(first, Welcome):
            log.info(
                "%s joined from %s (%d member%s online)",
                first.name,
                connection.peer,
                first.members,
                "" if first.members == 1 else "s",
            )
            # The turn's broadcasts from now on are for it too, counted before the dispatch:
            # it ends with the pending drops, whose `left` the joiner needs, since its welcome
            # still counted those members.
            connection.turn_index = len(self.turn.entries)
        self.dispatch(deliveries)
        name_refused = isinstance(first, Error) and first.code in (
            ErrorCode.BAD_NAME,
            ErrorCode.NAME_TAKEN,
        )
        if needs_password and (isinstance(first, Welcome) or name_refused):
            connection.password_checked = True  # names are checked after the password
            self.guard.password_accepted(connection.host)
        if isinstance(first, Error):
            if first.code is ErrorCode.AUTH_FAILED and hello.password is not None:
                log.info("wrong password from %s", connection.peer)
                self.guard.password_failed(connection.host)
            if first.code.is_fatal:
                connection.close()
            elif plain and name_refused:
                connection.write(b"Enter another name:\n")

    def _fit_history(self, connection: Connection, welcome: Welcome) -> Welcome:
        """`welcome` with the newest of its history that fits the member's send buffer.

        A welcome is written whole, whether or not the member reads it; were its history not
        bounded too, a crowd of members that never read would each hold a long history in the
        server's memory and the kernel's for as long as they stay.
        """
        budget = self.config.outgoing_limit
        history = welcome.history
        # Cheap and sure: no character of a message takes more than 5 bytes in either mode (4 in
        # UTF-8, a line break and its indent 5 in plain mode), and 256 cover the rest of its line.
        if sum(len(message.text) for message in history) * 5 + 256 * len(history) <= budget:
            return welcome
        used = 0
        kept = 0
        for message in reversed(history):
            used += len(connection.codec.encode(message))
            if used > budget:
                break
            kept += 1
        return dataclasses.replace(welcome, history=history[len(history) - kept :])

    # --- the operator's commands (tcpchat.moderation) -------------------------------------------

    def member(self, name: str) -> Connection | None:
        handle = self.room.handle_named(name)
        assert handle is None or isinstance(handle, Connection)
        return handle

    def kick(self, connection: Connection, reason: str | None) -> None:
        """Remove a member: `left` with reason `kicked` to the others, the why to them."""
        self.leave(connection, LeaveReason.KICKED)
        why = f": {reason}" if reason else "."
        connection.end(f"You were removed from the chat by the server's operator{why}")

    def ban(self, host: str, seconds: float | None) -> list[str]:
        """Refuse `host`'s address from now on and remove every connection from it; their names."""
        key = self.guard.ban(host, seconds)
        removed = []
        for connection in list(self.connections):
            if address_key(connection.host) != key or connection.done:
                continue
            name = connection.name
            if name is not None:
                removed.append(name)
                self.leave(connection, LeaveReason.KICKED)
            connection.end("Your address was banned from this server by its operator.")
        return removed

    def announce(self, text: str) -> None:
        """A message to everyone from `server`, in the room's `seq` order."""
        log.info("%s: %s", RESERVED_NAME, console_text(text))
        self.dispatch(self.room.announce(text, self.clock()))

    def leave(self, connection: Connection, reason: LeaveReason) -> None:
        """Take a connection out of the room and tell the others (nothing if it never joined)."""
        if self.stopping:
            return
        if connection.turn_index >= 0:  # what went to everyone while it was here, then no more
            connection.catch_up()
            connection.turn_index = -1
        name = self.room.name_of(connection)
        self.dispatch(self.room.leave(connection, reason, self.clock()))
        if name is not None:
            count = self.room.count
            log.info(
                "%s left (%s) from %s (%d member%s online)",
                name,
                reason.value,
                connection.peer,
                count,
                "" if count == 1 else "s",
            )

    def drop_later(self, connection: Connection, reason: LeaveReason) -> None:
        """Mark a member to drop once the current fan-out is over (never in the middle of one)."""
        if not connection.done:
            connection.done = True
            if not self._pending_drops:  # drained after the current fan-out, or just after it
                asyncio.get_running_loop().call_soon(self._run_drops)
            self._pending_drops.append((connection, reason))

    def _run_drops(self) -> None:
        """Drop the members marked slow, one after another (a drop's `left` may mark more).

        Not re-entered from the fan-outs it causes: the loop here takes those too, so hundreds
        of drops at once are a loop, not a recursion.
        """
        if self._dropping:
            return
        self._dropping = True
        try:
            while self._pending_drops:
                connection, reason = self._pending_drops.popleft()
                sockets.reset(connection.transport)
                self.leave(connection, reason)
        finally:
            self._dropping = False

    def dispatch(self, deliveries: Iterable[Delivery]) -> None:
        """Send each delivery: to everyone through the turn's broadcasts (encoded once), to
        named members through their codec, which follows what its peer was sent."""
        for delivery in deliveries:
            if delivery.everyone:
                self._broadcast(delivery.event, delivery.exclude)
                continue
            for connection in delivery.to:
                assert isinstance(connection, Connection)
                connection.send(delivery.event)
        self._run_drops()

    def _broadcast(self, event: ServerEvent, exclude: object) -> None:
        """Keep an event to every member but `exclude` for the end of this turn (`_end_turn`)."""
        entries = self.turn.entries
        if not entries:
            loop = asyncio.get_running_loop()
            if self.room.count < GATHER_FROM:
                loop.call_soon(self._end_turn)
            else:  # a crowd: one write per member for a few milliseconds' events, not per turn
                loop.call_later(GATHER_TIME, self._end_turn)
        entries.append((Outgoing(event), exclude))
        if exclude is not None:
            self.turn.excluded.add(exclude)

    def _end_turn(self) -> None:
        """Send the turn's broadcasts: joined once per mode and written whole to every member
        that had nothing else this turn; the others catch up one event at a time."""
        entries = self.turn.entries
        if not entries:
            return
        excluded = self.turn.excluded
        shared: dict[Mode, tuple[bytes, int]] = {}
        try:
            for member in self.room.handles():
                assert isinstance(member, Connection)
                if member.done:
                    continue
                if member.turn_index == 0 and member not in excluded:
                    mode = member.codec.mode
                    joined = shared.get(mode)
                    if joined is None:
                        pieces = [outgoing.bytes_for(mode) for outgoing, _ in entries]
                        joined = shared[mode] = (b"".join(pieces), max(map(len, pieces)))
                    member.take_broadcasts(*joined)
                else:
                    member.catch_up()
                    member.flush()
                member.turn_index = 0
        except BaseException:
            # Our bug, logged by the event loop: start the next turn afresh rather than stall
            # every later broadcast behind a log that is never cleared.
            for member in self.room.handles():
                assert isinstance(member, Connection)
                member.turn_index = 0
            raise
        finally:
            entries.clear()
            excluded.clear()
        self._run_drops()


class TurnBroadcasts:
    """The events to every member (but one, maybe) during this turn of the event loop."""

    __slots__ = ("entries", "excluded")

    def __init__(self) -> None:
        self.entries: list[tuple[Outgoing, object]] = []
        self.excluded: set[object] = set()


async def serve(
    config: ServerConfig,
    shutdown_trigger: Callable[[], Awaitable[object]],
    on_started: Callable[[ChatServer], None] | None = None,
) -> ChatServer:
    """Run a server with `config` until `shutdown_trigger()` completes; return it for its numbers."""
    server = ChatServer(config)
    task = asyncio.ensure_future(server.serve(shutdown_trigger))
    if on_started is not None:
        started = asyncio.ensure_future(server.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if server.started.is_set():
            on_started(server)
        else:
            started.cancel()
    await task
    return server
