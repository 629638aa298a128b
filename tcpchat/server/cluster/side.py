"""One process's part in a cluster: what it asks of Redis for its own members.

A member's `hello` claims its name in Redis before the room admits it here (or takes it over
from the connection, on any process, whose token it shows); its `say` gets its `seq` there; a
rename moves its name there, a private message to a member of another process passes through
there, and its leaving frees the name there.  The `joined`, `message`, `renamed` and `left`
that members see do not come from this process's room but from the room's events in Redis
(`tcpchat.server.cluster.live`), so every process's members see one order.  Another task renews
this process's lease and frees the names of processes whose lease ran out; a process that was
itself taken for dead (cut off longer than its lease) claims its members' names again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from tcpchat.protocol import (
    Ack,
    Dm,
    Error,
    Event,
    Hello,
    HistoryPage,
    HistoryRequest,
    Invalid,
    LeaveReason,
    Members,
    Mode,
    Nick,
    Private,
    Results,
    Say,
    SearchRequest,
    Welcome,
    Who,
    normalize_name,
)
from tcpchat.server.cluster.acts import SharedActs
from tcpchat.server.cluster.leases import RENEW_EVERY, Leases
from tcpchat.server.cluster.live import LiveEvents, stream_position
from tcpchat.server.cluster.publisher import Publisher
from tcpchat.server.cluster.shared_room import (
    RETRY_AFTER,
    Claim,
    ClusterUnavailable,
    SharedRoom,
    holder_parts,
)
from tcpchat.server.messages import RESUME_LIMIT
from tcpchat.server.room import (
    HISTORY_PAGE,
    HISTORY_PAGE_MAX,
    SEARCH_PAGE,
    SEARCH_PAGE_MAX,
    Delivery,
    clamp_limit,
    looks_taken,
    name_taken,
    nobody_called,
    unavailable,
)

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer
    from tcpchat.server.member import Member

log = logging.getLogger("tcpchat.server")

# Connections to Redis for the members' requests (each waits for its answer on one), and how
# long a request waits for a free one before it is `unavailable`.
POOL = 32
POOL_WAIT = 5.0
CLOSE_WITHIN = 1.0  # seconds a stopping process gives Redis to free its members' names


def token_digest(token: str | None) -> str:
    """What Redis keeps of a connection's token (enough to compare, useless to steal)."""
    if token is None:
        return ""
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _client(url: str, connections: int) -> redis.Redis:
    """A client of the Redis at `url` with at most `connections` connections: requests beyond
    that wait for one (up to POOL_WAIT) rather than fail, as a crowd joining at once would;
    a connection that cannot be made fails within seconds (then `unavailable`), not after the
    system's own connect timeout."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=POOL_WAIT,
        decode_responses=True,
        socket_connect_timeout=2,
    )
    return redis.Redis.from_pool(pool)  # which it closes with itself


def _refusal(name: str, claim: Claim) -> Error:
    return name_taken(name) if not claim.looks_like else looks_taken(name, claim.looks_like)


class ClusterSide:
    """This process in the cluster at `url` (see the module's note)."""

    def __init__(self, server: ChatServer, url: str, room: str) -> None:
        self.server = server
        self.client = _client(url, POOL)
        # The blocking reads (the room's events, the operator's acts) have connections of their
        # own, so that cancelling one at shutdown leaves the others' clean.
        self.reader = _client(url, 4)
        self.process = secrets.token_hex(8)
        self.shared = SharedRoom(self.client, room, self.process, reader=self.reader)
        self.leases = Leases(self.client, self.process)
        self.alive = 1  # processes in the cluster, this one included
        self._ids: dict[Member, str] = {}
        self._by_id: dict[str, Member] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failing = False
        # Members whose name a token took over (their leaving frees nothing), and members whose
        # name was freed while this process was cut off (being claimed again).
        self._replaced: set[Member] = set()
        self._reclaiming: set[Member] = set()
        self.live = LiveEvents(self)
        self.publisher = Publisher(self)
        self.acts = SharedActs(server, self.shared, self.reader, self.spawn)

    # --- the process ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: the counter checked, live events from now on, our lease."""
        await self.shared.raise_seq()
        room = self.server.fanouts[self.shared.keys.room].room
        room.sent.use_key(await self.shared.token_key(room.sent.key))
        self.alive, _ = await self.leases.renew()
        await self.live.start()
        await self.acts.start()
        self.spawn(self.publisher.publish_forever())
        self.spawn(self._keep_lease())

    async def close(self) -> None:
        """Leave the cluster: our members' names freed (each with its `left`), our lease ended;
        within CLOSE_WITHIN even when Redis is gone (the lease then runs out by itself)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:  # a read that does not let go is left behind, not waited for
            await asyncio.wait(set(self._tasks), timeout=CLOSE_WITHIN / 2)
        try:
            await asyncio.wait_for(self._leave_cluster(), CLOSE_WITHIN)
        except (ClusterUnavailable, asyncio.TimeoutError) as error:
            log.warning("Leaving the cluster cleanly failed: %s", error or "Redis did not answer.")
        for client in (self.client, self.reader):  # each closes its connections first thing
            try:
                await asyncio.wait_for(client.aclose(), CLOSE_WITHIN / 4)
            except (OSError, RedisError, asyncio.TimeoutError):
                pass  # closing, not waited for (a connection to a Redis gone may not answer)

    async def _leave_cluster(self) -> None:
        await self.shared.forget_process(self.process, self.server.clock())
        await self.leases.release()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def failed(self, error: ClusterUnavailable) -> None:
        if not self._failing:
            self._failing = True
            log.warning("%s Messages are refused until Redis answers again (not repeated).", error)

    def worked(self) -> None:
        if self._failing:
            self._failing = False
            log.info("Redis answers again; messages are accepted.")

    def member_with(self, connection: str) -> Member | None:
        """The member here whose connection id is `connection`, if it is still here."""
        return self._by_id.get(connection)

    def member_holding(self, holder: str) -> Member | None:
        """The member here that `holder` (`PROCESS CONNECTION NAME`) names, if it is ours."""
        process, connection, _ = holder_parts(holder)
        return self.member_with(connection) if process == self.process else None

    def connection_id(self, member: Member) -> str:
        found = self._ids.get(member)
        if found is None:
            self._next_id += 1
            found = self._ids[member] = str(self._next_id)
            self._by_id[found] = member
        return found

    # --- a member's requests -------------------------------------------------------------------

    def handle(self, member: Member, event: Event | Invalid) -> bool:
        """Answer a member's event through the cluster when the answer is the cluster's (True);
        False for the events a process answers alone."""
        if isinstance(event, Say):
            self.publisher.say(member, event)
        elif isinstance(event, Who):
            self.who(member)
        elif isinstance(event, HistoryRequest):
            self.history(member, event)
        elif isinstance(event, SearchRequest):
            self.search(member, event)
        elif isinstance(event, Nick):
            self.nick(member, event)
        elif isinstance(event, Dm):
            if member.fanout.room.handle_named(event.to) is not None:
                return False  # a member of this process: no need to ask Redis
            self.dm(member, event)
        else:
            return False
        return True

    def join(self, member: Member, hello: Hello, needs_password: bool) -> None:
        """`hello` passed the room's checks: claim the name in Redis (or take it over from the
        connection whose token it shows, on any process), then admit it here."""
        self.spawn(self._join(member, hello, needs_password))

    async def _join(self, member: Member, hello: Hello, needs_password: bool) -> None:
        room = member.fanout.room
        name = normalize_name(hello.name)
        now = self.server.clock()
        lineage, token = room.lineage_and_token(hello)
        deliveries: list[Delivery]
        try:
            claim = await self.shared.join(
                name,
                self.connection_id(member),
                now,
                token=token_digest(token),
                shown=token_digest(hello.token),
            )
            if claim.claimed:
                names = await self.shared.names()
                if hello.since is None:
                    history = await self.shared.before(claim.seq + 1, room.limits.history)
                    complete = True
                else:
                    since = max(0, hello.since)
                    history = await self.shared.since(since, RESUME_LIMIT)
                    complete = since <= claim.seq and len(history) >= claim.seq - since
            self.worked()
        except ClusterUnavailable as error:
            self.failed(error)
            member.fanout.dispatch([unavailable(member)])
            return
        if claim.holder and claim.claimed:  # taken over: the old connection goes
            self.replace(claim.holder)
        if not claim.claimed:
            deliveries = [Delivery(_refusal(name, claim), (member,))]
        elif member.done:  # it went while Redis answered
            await self._free(member, name, LeaveReason.DISCONNECTED)
            return
        else:
            admitted = room.admit(
                member, hello, name, now, history=history, complete=complete, seq=claim.seq,
                lineage=lineage, token=token,
            )  # fmt: skip
            welcome = admitted[0].event
            assert isinstance(welcome, Welcome)
            welcome = dataclasses.replace(welcome, members=claim.members, names=names)
            deliveries = [Delivery(welcome, (member,))]  # `joined` comes from the stream
            self.live.joined_at[member] = stream_position(claim.event_id)
        self.server.joined(member, hello, deliveries, needs_password)

    def replace(self, holder: str) -> None:
        """A token took the name of `holder` (`PROCESS CONNECTION NAME`) over: if that
        connection is ours, it goes (its `left`, reason replaced, is already in the stream)."""
        old = self.member_holding(holder)
        if old is not None and old.fanout.room.is_member(old):
            self._replaced.add(old)
            self.server.replace(old)

    def leave(self, member: Member, name: str, reason: LeaveReason) -> None:
        """A member here left: its name is freed in Redis (its `left` comes from the stream)."""
        self.live.joined_at.pop(member, None)
        self._reclaiming.discard(member)
        if member in self._replaced:  # the name is its successor's now
            self._replaced.discard(member)
            self._by_id.pop(self._ids.pop(member, ""), None)
            return
        self.spawn(self._free(member, name, reason))

    async def _free(self, member: Member, name: str, reason: LeaveReason) -> None:
        try:
            await self.shared.leave(name, self.connection_id(member), reason, self.server.clock())
        except ClusterUnavailable as error:
            self.failed(error)  # the lease's end frees it, if this process goes
        finally:
            self._by_id.pop(self._ids.pop(member, ""), None)

    def dm(self, member: Member, dm: Dm) -> None:
        """A private message to a member of another process, through the room's events."""
        room = member.fanout.room
        refused = room.dm_refusal(member, dm)
        if refused is not None:
            member.fanout.dispatch(refused)
            return
        self.spawn(self._dm(member, dm))

    async def _dm(self, member: Member, dm: Dm) -> None:
        room = member.fanout.room
        sender = room.name_of(member)
        if sender is None:
            return
        now = self.server.clock()
        try:
            to = await self.shared.dm(normalize_name(dm.to), sender, dm.text, now)
            self.worked()
        except ClusterUnavailable as error:
            self.failed(error)
            to = None
            deliveries = [unavailable(member, dm.id)]
        else:
            if to is None:
                deliveries = [nobody_called(member, dm)]
            else:
                log.info("%s sent a private message to %s", sender, to)
                deliveries = [Delivery(Ack(id=dm.id, seq=None, ts=now, delivered=1), (member,))]
                if member.codec.mode is Mode.PLAIN:  # the nc user's echo
                    private = Private(sender=sender, to=to, text=dm.text, ts=now)
                    deliveries.insert(0, Delivery(private, (member,)))
        if room.is_member(member):
            member.fanout.dispatch(deliveries)

    def nick(self, member: Member, nick: Nick) -> None:
        """A new name: checked here, moved in Redis; the `renamed` comes from the stream."""
        room = member.fanout.room
        new = normalize_name(nick.name)
        error = room.name_error(new, renaming=member)
        if error is not None:
            member.fanout.dispatch([Delivery(error, (member,))])
            return
        self.spawn(self._rename(member, new))

    async def _rename(self, member: Member, new: str) -> None:
        room = member.fanout.room
        old = room.name_of(member)
        if old is None:
            return
        now = self.server.clock()
        try:
            claim = await self.shared.rename(old, new, self.connection_id(member), now)
            self.worked()
        except ClusterUnavailable as error:
            self.failed(error)
            claim = None
        if not room.is_member(member):
            return
        if claim is not None and claim.claimed:
            if room.name_of(member) == old:
                room.rename(member, new, now)
                log.info("%s is now known as %s", old, new)
        elif claim is not None and (claim.holder or claim.looks_like):
            member.fanout.dispatch([Delivery(_refusal(new, claim), (member,))])
        else:  # Redis failed, or the old name is being claimed again: nothing changed
            member.fanout.dispatch([unavailable(member)])

    def who(self, member: Member) -> None:
        self.spawn(self._answer(member, self._who()))

    async def _who(self) -> Members:
        names = await self.shared.names()
        return Members(names=names, members=len(names))

    def history(self, member: Member, request: HistoryRequest) -> None:
        self.spawn(self._answer(member, self._history(request), request.id))

    async def _history(self, request: HistoryRequest) -> HistoryPage:
        limit = clamp_limit(request.limit, HISTORY_PAGE, HISTORY_PAGE_MAX)
        messages = await self.shared.before(request.before, limit + 1)
        more = len(messages) > limit
        return HistoryPage(messages=messages[1:] if more else messages, more=more, id=request.id)

    def search(self, member: Member, request: SearchRequest) -> None:
        self.spawn(self._answer(member, self._search(request), request.id))

    async def _search(self, request: SearchRequest) -> Results:
        limit = clamp_limit(request.limit, SEARCH_PAGE, SEARCH_PAGE_MAX)
        return Results(messages=await self.shared.search(request.text, limit), id=request.id)

    async def _answer(
        self, member: Member, asked: Coroutine[Any, Any, Any], request_id: str | None = None
    ) -> None:
        try:
            event = await asked
            self.worked()
        except ClusterUnavailable as error:
            self.failed(error)
            event = unavailable(member, request_id).event
        if member.fanout.room.is_member(member):
            member.fanout.dispatch([Delivery(event, (member,))])

    def reclaim(self, member: Member) -> None:
        """A member here lost its name while this process was taken for dead: claim it again."""
        if member not in self._reclaiming:
            self._reclaiming.add(member)
            self.spawn(self._reclaim(member))

    async def _reclaim(self, member: Member) -> None:
        """Claim a member's name again after this process was taken for dead; if someone took
        it meanwhile, the member is told and disconnected (its client reconnects and asks)."""
        room = member.fanout.room
        name = room.name_of(member)
        while name is not None and member in self._reclaiming:
            try:
                claim = await self.shared.join(
                    name,
                    self.connection_id(member),
                    self.server.clock(),
                    token=token_digest(room.token_of(member)),
                )
                self.worked()
            except ClusterUnavailable as error:
                self.failed(error)
                await asyncio.sleep(RETRY_AFTER)
                continue
            self._reclaiming.discard(member)
            if claim.claimed:
                log.info("%s is back after this process was cut off from the cluster", name)
            elif claim.holder.startswith(f"{self.process} {self.connection_id(member)} "):
                pass  # it had not lost it
            elif room.is_member(member):
                log.info("%s's name was taken while this process was cut off", name)
                self._replaced.add(member)  # the name is someone else's: nothing to free
                self.server.leave(member, LeaveReason.DISCONNECTED)
                member.end(
                    "Someone took your name while this server was cut off from the others; "
                    "connect again to choose another.",
                    LeaveReason.DISCONNECTED,
                )
            return

    # --- the lease -----------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                self.alive, kept = await self.leases.renew()
                if not kept:  # taken for dead meanwhile (or Redis lost its data)
                    log.warning(
                        "This process's lease ran out; its members claim their names again."
                    )
                    for member in list(self._by_id.values()):
                        if member.fanout.room.is_member(member):
                            self.reclaim(member)
                for process in await self.leases.expired():
                    if process != self.process:
                        gone = await self.shared.forget_process(process, self.server.clock())
                        await self.leases.forget(process)
                        if gone:
                            log.info("a stopped process's %d members left", gone)
                self.worked()
            except ClusterUnavailable as error:
                self.failed(error)
