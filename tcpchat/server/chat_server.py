"""The asyncio chat server: the door, the rooms, and the operator's actions.

Sockets stop here.  Parsing and rendering are `protocol`'s job and the rules of a room are
`room`'s; each connection is a `member`, which reads its peer and hands the server its events,
and a room's events reach its members through its `fanout`.  This module admits connections and
routes events between members and their room: it decides nothing about chat and writes nothing
itself.  Accepting: `accept` hands over bare sockets; the door (`guard`) decides before any TLS
handshake, and handshakes share fair slots.

Rooms are kept by name.  Today every connection joins `LOBBY`, the only one; what a member says
goes to the room it is in, never to "the" room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, cast

from tcpchat import sockets
from tcpchat.defaults import SECONDS
from tcpchat.protocol import (
    PLAIN_HELP,
    RESERVED_NAME,
    Bye,
    Dm,
    Error,
    ErrorCode,
    Event,
    Hello,
    HelpRequest,
    HistoryRequest,
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
    SearchRequest,
    ServerCodec,
    Shutdown,
    Welcome,
    Who,
)
from tcpchat.server.clock import now
from tcpchat.server.config import ServerConfig
from tcpchat.server.console import console_text
from tcpchat.server.door import Door
from tcpchat.server.durable import Held, holdings, open_store, retention
from tcpchat.server.fanout import Fanout, Outgoing, Recipient
from tcpchat.server.flood import FloodControl
from tcpchat.server.guard import AddressGuard, address_key
from tcpchat.server.member import Codec, Member
from tcpchat.server.room import Delivery, Room
from tcpchat.server.store import Store

if TYPE_CHECKING:
    from tcpchat.server.cluster.side import ClusterSide
    from tcpchat.server.web import WebPort
from tcpchat.words import counted, members_online

__all__ = ["LOBBY", "ChatServer", "ServerConfig", "serve"]

REFUSE_GRACE = 2 * SECONDS  # how long a connection refused at the door may take to flush
LOBBY = "lobby"  # the room every connection joins
INTERNAL_ERROR = (
    "The server hit an internal error on your connection and closed it; please reconnect."
)
log = logging.getLogger("tcpchat.server")


class ChatServer:
    """The rooms plus the live connections; `serve()` runs it until `shutdown_trigger` completes.

    To each member it is the `Hub` (tcpchat.server.member): the member hands it what it read, and
    it answers through the member's room and that room's fan-out.
    """

    def __init__(
        self, config: ServerConfig, clock: Callable[[], datetime] = now, store: Store | None = None
    ) -> None:
        self.config = config
        # Rooms by name, each with its fan-out (the room's writes); a member's is `member.fanout`.
        # A room's messages go out through its `Holding`: with a store, once they are durable.
        history = None if store is None else store.room(LOBBY, recent=config.history)
        self.rooms: dict[str, Room] = {LOBBY: Room(config.room_limits(), history)}
        self.fanouts = {name: Fanout(room, self._drop) for name, room in self.rooms.items()}
        self.holdings = holdings(self.fanouts)
        self._requests: set[asyncio.Task[None]] = set()  # searches under way
        self.guard = AddressGuard(config.guard_limits())
        self.flood = FloodControl(config.flood_limits())
        self.stopping = False
        self.door = Door(
            self.guard, handshake_timeout=config.handshake_timeout, stopping=lambda: self.stopping
        )
        self._listener = self.door.listener(self._serve_connection, config.tls)
        self._web_listener = None
        self.web: WebPort | None = None
        if config.web_port is not None:
            from tcpchat.server.web import WebPort  # the optional web side, only when it is on

            self.web = WebPort(self)
            self._web_listener = self.door.listener(self.web.serve, config.tls)
        self.web_ports: list[int] = []
        self.cluster: ClusterSide | None = None
        if config.cluster is not None:
            from tcpchat.server.cluster.side import ClusterSide  # only when it is on

            self.cluster = ClusterSide(self, config.cluster, LOBBY)
        self.clock = clock
        self.connections: set[Member] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ports: list[int] = []
        self.addresses: list[str] = []
        self.started = asyncio.Event()

    @property
    def lobby(self) -> Room:
        """The room every connection joins (today the only one)."""
        return self.rooms[LOBBY]

    @property
    def online(self) -> int:
        """Members in all the rooms."""
        return sum(room.count for room in self.rooms.values())

    # --- serving -------------------------------------------------------------------------------

    async def serve(self, shutdown_trigger: Callable[[], Awaitable[object]]) -> None:
        """Listen, serve every connection, and return once `shutdown_trigger()` completes and
        the members have been told and flushed (hypercorn's design: tests stop it without signals)."""
        listeners = sockets.bind_sockets(self.config.host, self.config.port)
        self._listener.start(listeners)
        self.addresses = [sockets.format_address(s.getsockname()) for s in listeners]
        self.ports = sorted({s.getsockname()[1] for s in listeners})
        try:
            if self.cluster is not None:
                await self.cluster.start()
            if self._web_listener is not None:
                assert self.config.web_port is not None
                web = sockets.bind_sockets(self.config.host, self.config.web_port)
                self._web_listener.start(web)
                self.web_ports = sorted({s.getsockname()[1] for s in web})
            self.started.set()
            await shutdown_trigger()
        finally:
            await self._listener.close()
            if self._web_listener is not None:
                await self._web_listener.close()
            await self._shut_down()
            if self.cluster is not None:
                await self.cluster.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: str | None
    ) -> None:
        """Serve a connection the door let in until it ends, or tell a refused one why."""
        codec = ServerCodec(self.config.effective_line_limit)
        await self.serve_member(self.new_member(codec, reader, writer), refusal)

    def new_member(
        self, codec: Codec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Member:
        """A connection that will join the lobby, speaking through `codec`."""
        return Member(self, self.config, codec, self.fanouts[LOBBY], self.flood, reader, writer)

    async def serve_member(self, connection: Member, refusal: str | None = None) -> None:
        """Serve `connection` until it ends (or tell it `refusal` and close)."""
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(connection)
        self._tasks.add(task)
        grace: float | None = None  # the member's own CLOSE_GRACE
        try:
            try:
                if refusal is None:
                    await connection.run()
                else:
                    self.note_refusal(connection.host, connection.peer, refusal)
                    connection.write(f"! {refusal}\n".encode())  # in place of the banner
                    connection.close()
                    grace = REFUSE_GRACE
            except Exception:
                log.exception("unexpected error on the connection of %s", connection.peer)
                self.leave(connection, LeaveReason.DISCONNECTED)
                self._fail(connection)
                grace = None
            await connection.finish_closing(grace)
        except asyncio.CancelledError:
            # Cancelled by the shutdown deadline.  Ending normally keeps asyncio (3.11) from
            # logging a traceback for every cancelled connection.
            pass
        finally:
            if connection.pace is not None:
                self.flood.release(connection.host)
            connection.forget_timers()
            self.connections.discard(connection)
            self._tasks.discard(task)
            if not connection.transport.is_closing():
                connection.close(abort=True)

    def note_refusal(self, host: str, peer: str, refusal: str) -> None:
        """A connection refused at the door is being told why (the log says so, in moderation)."""
        self.door.refusals.note(host, peer, refusal)

    def _fail(self, connection: Member) -> None:
        connection.close_with(INTERNAL_ERROR)

    async def _shut_down(self) -> None:
        """Tell every member, flush with a deadline, then close whatever is left."""
        self.stopping = True
        for holding in self.holdings.values():  # their acks go out before the goodbye
            await holding.settle()
        self.door.cancel_handshakes()
        goodbye = Outgoing(Shutdown(message=f"The server {self.config.name} is shutting down."))
        count = self.online
        for connection in list(self.connections):
            connection.write(goodbye.bytes_for(connection.codec.mode))
            connection.close()
        log.info("server stopping; %s disconnected", counted(count, "member"))
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            for connection in list(self.connections):
                sockets.reset(connection.transport)
            if pending:
                await asyncio.wait(pending, timeout=0.5)

    # --- events (the Hub a member talks to) ----------------------------------------------------

    def room_size(self, member: Member) -> int:
        return member.fanout.room.count

    def has_joined(self, member: Member) -> bool:
        return member.fanout.room.is_member(member)

    def name_of(self, member: Member) -> str | None:
        return member.fanout.room.name_of(member)

    def handle(self, connection: Member, event: Event | Invalid) -> None:
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
        connection.fanout.run_drops()

    def _handle(self, connection: Member, event: Event | Invalid) -> None:
        fanout = connection.fanout
        room = fanout.room
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
            connection.watch.arm()  # a member's deadline is its idle timeout's, maybe sooner
            return
        if not room.is_member(connection):
            request_id = getattr(event, "id", None)
            connection.send(
                Error(ErrorCode.NOT_JOINED, "Send hello with your name first.", request_id)
            )
            return
        if self.cluster is not None and self.cluster.handle(connection, event):
            return  # answered through the cluster
        if isinstance(event, Say):
            deliveries = room.say(connection, event, now)
            if isinstance(deliveries[0].event, Message) and log.isEnabledFor(logging.INFO):
                said = "* %s %s" if event.me else "%s: %s"  # an action reads as on nc
                log.info(said, room.name_of(connection), console_text(event.text))
            self.holdings[fanout].send(Held(deliveries, connection, event.id))
            return
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
        elif isinstance(event, HistoryRequest):
            deliveries = room.history(connection, event)
        elif isinstance(event, SearchRequest):
            task = asyncio.ensure_future(self._search(connection, event))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            return
        elif isinstance(event, HelpRequest):
            connection.write(PLAIN_HELP.encode() + b"\n")
            return
        else:  # every client event is handled above; anything else is our bug
            raise TypeError(f"no handler for {event!r}")
        fanout.dispatch(deliveries)

    async def _search(self, connection: Member, request: SearchRequest) -> None:
        """A search may take a while (on the store's thread): its answer comes when it is done."""
        deliveries = await connection.fanout.room.search(connection, request)
        if connection.fanout.room.is_member(connection):
            connection.fanout.dispatch(deliveries)

    def _hello(self, connection: Member, hello: Hello) -> None:
        fanout = connection.fanout
        room = fanout.room
        plain = connection.codec.mode is Mode.PLAIN
        needs_password = room.limits.password is not None and not connection.password_checked
        locked = self.guard.password_refused(connection.host) if needs_password else None
        if locked is not None:  # no guessing on connections opened before the lockout either
            self.note_refusal(connection.host, connection.peer, locked)
            connection.send(Error(ErrorCode.AUTH_FAILED, locked))
            connection.close()
            return
        if plain and needs_password and hello.password is None and not room.is_member(connection):
            # Whatever the name: whether it is free must not be told before the password.
            connection.codec.ask_password(hello.name)
            connection.write(b"Password:\n")
            return
        replaced = room.replaced_by(connection, hello, password_checked=connection.password_checked)
        if self.cluster is None:
            if replaced is not None:
                self.replace(cast(Member, replaced))
            deliveries = room.join(
                connection, hello, self.clock(), password_checked=connection.password_checked
            )
        else:  # a name is taken over in Redis, from this process or another
            refused = room.join_refusal(
                connection,
                hello,
                password_checked=connection.password_checked,
                replacing=replaced,
            )
            if refused is None:  # the name is claimed in Redis first
                self.cluster.join(connection, hello, needs_password)
                return
            deliveries = refused
        self.joined(connection, hello, deliveries, needs_password)

    def joined(
        self, connection: Member, hello: Hello, deliveries: list[Delivery], needs_password: bool
    ) -> None:
        """Send a `hello`'s answer: a `welcome` (and `joined` to the rest), or an `error`."""
        fanout = connection.fanout
        plain = connection.codec.mode is Mode.PLAIN
        first = deliveries[0].event
        if isinstance(first, Welcome) and first.history:
            first = connection.fit_history(first, resuming=hello.since is not None)
            deliveries[0] = Delivery(first, deliveries[0].to)
        if isinstance(first, Welcome):
            log.info(
                "%s joined from %s (%s)", first.name, connection.peer, members_online(first.members)
            )
            # The turn's broadcasts from now on are for it too, counted before the dispatch:
            # it ends with the pending drops, whose `left` the joiner needs, since its welcome
            # still counted those members.
            fanout.joined(connection)
            self.holdings[fanout].joined(connection, first.seq)
        fanout.dispatch(deliveries)
        name_refused = isinstance(first, Error) and first.code in (
            ErrorCode.BAD_NAME,
            ErrorCode.NAME_TAKEN,
        )
        if needs_password and (isinstance(first, Welcome) or name_refused):
            connection.password_checked = True  # names are checked after the password
            self.guard.password_accepted(connection.host)
        if isinstance(first, Error):
            if first.code is ErrorCode.SERVER_FULL:
                self.note_refusal(connection.host, connection.peer, first.message)
            if first.code is ErrorCode.AUTH_FAILED and hello.password is not None:
                log.info("wrong password from %s", connection.peer)
                self.guard.password_failed(connection.host)
            if first.code.is_fatal:
                connection.close()
            elif plain and name_refused:
                connection.write(b"Enter another name:\n")

    def replace(self, old: Member) -> None:
        """A new connection showed `old`'s token: `old` goes (`left` with reason `replaced`)
        and is closed, so that the new one can take its name."""
        log.info("%s reconnected; its connection from %s is closed", old.name, old.peer)
        self.leave(old, LeaveReason.REPLACED)
        old.end(
            "You connected again from elsewhere; this connection is closed.", LeaveReason.REPLACED
        )

    def tell(self, member: Member, text: str) -> None:
        """A private word from the server to one member (an idle warning, say)."""
        fanout = member.fanout
        fanout.dispatch(fanout.room.notify(member, text, self.clock()))

    def leave(self, connection: Member, reason: LeaveReason) -> None:
        """Take a connection out of its room and tell the others (nothing if it never joined)."""
        if self.stopping:
            return
        fanout = connection.fanout
        room = fanout.room
        fanout.leaving(connection)
        name = room.name_of(connection)
        left = room.leave(connection, reason, self.clock())
        if self.cluster is None:
            fanout.dispatch(left)
        elif name is not None:  # the `left` comes from Redis, to every process
            self.cluster.leave(connection, name, reason)
        if name is not None:
            log.info(
                "%s left (%s) from %s (%s)",
                name,
                reason.value,
                connection.peer,
                members_online(room.count),
            )

    def _drop(self, member: Recipient, reason: LeaveReason) -> None:
        """A member its room's fan-out found too slow (see `Fanout.drop_later`): cut it and go."""
        assert isinstance(member, Member)
        sockets.reset(member.transport)
        self.leave(member, reason)

    # --- the operator's commands (tcpchat.server.moderation) ----------------------------------

    def member(self, name: str) -> Member | None:
        """The member called `name` (any case or width), in whichever room it is."""
        for room in self.rooms.values():
            handle = room.handle_named(name)
            if handle is not None:
                assert isinstance(handle, Member)
                return handle
        return None

    def kick(self, connection: Member, reason: str | None) -> None:
        """Remove a member: `left` with reason `kicked` to the others, the why to them."""
        self.leave(connection, LeaveReason.KICKED)
        why = f": {reason}" if reason else "."
        connection.end(f"You were removed from the chat by the server's operator{why}")

    def ban(self, host: str, seconds: float | None, *, share: bool = True) -> list[str]:
        """Refuse `host`'s address from now on and remove every connection from it; their names.
        In a cluster every process does (`share`: tell the others)."""
        key = self.guard.ban(host, seconds)
        if share and self.cluster is not None:
            self.cluster.acts.share_ban(key, seconds)
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

    def unban(self, host: str) -> bool:
        """Lift the ban on `host`'s address (on every process of a cluster); whether there was one."""
        if self.cluster is not None:
            self.cluster.acts.share_unban(address_key(host))
        return self.guard.unban(host)

    def announce(self, text: str) -> None:
        """A message to everyone from `server`: in each room, in that room's `seq` order."""
        log.info("%s: %s", RESERVED_NAME, console_text(text))
        now = self.clock()
        for fanout in self.fanouts.values():
            self.holdings[fanout].send(Held(fanout.room.announce(text, now)))


async def serve(
    config: ServerConfig,
    shutdown_trigger: Callable[[], Awaitable[object]],
    on_started: Callable[[ChatServer], None] | None = None,
) -> ChatServer:
    """Run a server with `config` until `shutdown_trigger()` completes; return it for its numbers
    (`LogUnavailable`, one sentence, when the history file `config.db` cannot be opened)."""
    store = open_store(config)
    server = ChatServer(config, store=store)
    async with retention(store, config, server.clock):
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
