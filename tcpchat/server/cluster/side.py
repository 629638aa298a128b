"""One process's part in a cluster: what it asks of Redis for its own members, and the room's
events from Redis that it hands to them.

A member's `hello` claims its name in Redis before the room admits it here; its `say` gets its
`seq` there; its leaving frees the name there.  The `joined`, `message` and `left` that members
see do not come from this process's room but from one task that reads the room's `events`
stream in order and gives each event to the members here (a sender gets its `ack` at its
message's place in that order), so every process's members see one order.  Another task
renews this process's lease and frees the names of processes whose lease ran out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis

from tcpchat.protocol import (
    Ack,
    Error,
    ErrorCode,
    Event,
    Hello,
    HistoryPage,
    HistoryRequest,
    Invalid,
    LeaveReason,
    Members,
    Message,
    Nick,
    Results,
    Say,
    SearchRequest,
    Welcome,
    Who,
    fold_name,
    normalize_name,
)
from tcpchat.server.cluster.keys import CONTROL
from tcpchat.server.cluster.leases import RENEW_EVERY, Leases
from tcpchat.server.cluster.shared_room import ClusterUnavailable, Said, SharedRoom, ask
from tcpchat.server.cluster.shared_room import Event as StreamEntry
from tcpchat.server.messages import RESUME_LIMIT
from tcpchat.server.once import request_key
from tcpchat.server.room import (
    HISTORY_PAGE,
    HISTORY_PAGE_MAX,
    SEARCH_PAGE,
    SEARCH_PAGE_MAX,
    Delivery,
    clamp_limit,
    name_taken,
    unavailable,
)

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer
    from tcpchat.server.member import Member

log = logging.getLogger("tcpchat.server")

READ_BLOCK_MS = 1000  # how long one read of the events waits for news
RETRY_AFTER = 0.5  # seconds before trying Redis again after a failure
CLOSE_WITHIN = 1.0  # seconds a stopping process gives Redis to free its members' names


@dataclasses.dataclass(frozen=True, slots=True)
class _Outgoing:
    """A member's message on its way to Redis."""

    member: Member
    say: Say
    name: str
    tag: str
    lineage: int
    ts: datetime


def _stream_position(event_id: str) -> tuple[int, int]:
    milliseconds, _, number = event_id.partition("-")
    return int(milliseconds), int(number or 0)


class ClusterSide:
    """This process in the cluster at `url` (see the module's note)."""

    def __init__(self, server: ChatServer, url: str, room: str) -> None:
        self.server = server
        # A connection that cannot be made fails within seconds (then `unavailable`), not
        # after the system's own connect timeout.
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
        # The blocking reads (the room's events, the operator's acts) have connections of their
        # own, so that cancelling one at shutdown leaves the others' clean.
        self.reader = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
        self.process = secrets.token_hex(8)
        self.shared = SharedRoom(self.client, room, self.process, reader=self.reader)
        self.leases = Leases(self.client, self.process)
        self.alive = 1  # processes in the cluster, this one included
        self._last_id = "0-0"
        self._ids: dict[Member, str] = {}
        self._by_id: dict[str, Member] = {}
        self._next_id = 0
        # Where the own `joined` of each member that joined here lately is in the stream, until
        # delivery passes it: such a member gets only the events after it.
        self._joined_at: dict[Member, tuple[int, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failing = False
        self._outbox: list[_Outgoing] = []  # messages for Redis, in the order they came
        self._control_id = "0-0"
        self._news = asyncio.Event()

    # --- the process ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: the counter checked, live events from now on, our lease."""
        await self.shared.raise_seq()
        room = self.server.fanouts[self.shared.keys.room].room
        room.sent.use_key(await self.shared.token_key(room.sent.key))
        self._last_id = await self.shared.newest_event_id()
        self.alive = await self.leases.renew()
        found: Any = await ask("read the operator's acts", self.client.xrevrange(CONTROL, count=1))
        self._control_id = found[0][0] if found else "0-0"
        self._spawn(self._deliver_forever())
        self._spawn(self._obey_forever())
        self._spawn(self._publish_forever())
        self._spawn(self._keep_lease())

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
        for client in (self.client, self.reader):
            try:
                await asyncio.wait_for(client.aclose(), CLOSE_WITHIN / 4)
            except (OSError, asyncio.TimeoutError):
                pass

    async def _leave_cluster(self) -> None:
        await self.shared.forget_process(self.process, self.server.clock())
        await self.leases.release()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _failed(self, error: ClusterUnavailable) -> None:
        if not self._failing:
            self._failing = True
            log.warning("%s Messages are refused until Redis answers again (not repeated).", error)

    def _worked(self) -> None:
        if self._failing:
            self._failing = False
            log.info("Redis answers again; messages are accepted.")

    def _connection_id(self, member: Member) -> str:
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
            self.say(member, event)
        elif isinstance(event, Who):
            self.who(member)
        elif isinstance(event, HistoryRequest):
            self.history(member, event)
        elif isinstance(event, SearchRequest):
            self.search(member, event)
        elif isinstance(event, Nick):
            member.send(Error(ErrorCode.BAD_MESSAGE, "Names cannot be changed in a cluster yet."))
        else:
            return False
        return True

    def join(self, member: Member, hello: Hello, needs_password: bool) -> None:
        """`hello` passed the room's checks: claim the name in Redis, then admit it here."""
        self._spawn(self._join(member, hello, needs_password))

    async def _join(self, member: Member, hello: Hello, needs_password: bool) -> None:
        room = member.fanout.room
        name = normalize_name(hello.name)
        now = self.server.clock()
        deliveries: list[Delivery]
        try:
            claim = await self.shared.join(fold_name(name), name, self._connection_id(member), now)
            if claim.claimed:
                names = await self.shared.names()
                if hello.since is None:
                    history = await self.shared.before(claim.seq + 1, room.limits.history)
                    complete = True
                else:
                    since = max(0, hello.since)
                    history = await self.shared.since(since, RESUME_LIMIT)
                    complete = since <= claim.seq and len(history) >= claim.seq - since
            self._worked()
        except ClusterUnavailable as error:
            self._failed(error)
            member.fanout.dispatch([unavailable(member)])
            return
        if not claim.claimed:
            deliveries = [Delivery(name_taken(name), (member,))]
        elif member.done:  # it went while Redis answered
            await self._free(member, name, LeaveReason.DISCONNECTED)
            return
        else:
            admitted = room.admit(
                member, hello, name, now, history=history, complete=complete, seq=claim.seq
            )
            welcome = admitted[0].event
            assert isinstance(welcome, Welcome)
            welcome = dataclasses.replace(welcome, members=claim.members, names=names)
            deliveries = [Delivery(welcome, (member,))]  # `joined` comes from the stream
            self._joined_at[member] = _stream_position(claim.event_id)
        self.server.joined(member, hello, deliveries, needs_password)

    def say(self, member: Member, say: Say) -> None:
        """A member's `say`: numbered in Redis; its `message` and `ack` come from the stream."""
        room = member.fanout.room
        now = self.server.clock()
        refused = room.say_refusal(member, say, now)
        if refused is not None:  # an id sent before on this process, or a text refused
            member.fanout.dispatch(refused)
            return
        lineage = room.lineage_of(member)
        name = room.name_of(member)
        assert name is not None
        request = "" if say.id is None else "=" + say.id
        tag = f"{self._connection_id(member)} {request}"
        self._outbox.append(_Outgoing(member, say, name, tag, lineage, now))
        self._news.set()

    async def _publish_forever(self) -> None:
        """Send the members' messages to Redis in the order they came, all that waited in one
        round trip (so a member's messages keep their order, and a busy turn costs one)."""
        while True:
            await self._news.wait()
            self._news.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            try:
                kept = await self.shared.say_many(
                    [
                        Said(
                            o.name, o.say.text, o.ts, o.say.me, o.tag, o.lineage,
                            b"" if o.say.id is None else request_key(o.say.id),
                        )
                        for o in batch
                    ]
                )  # fmt: skip
                self._worked()
            except ClusterUnavailable as error:
                self._failed(error)
                for outgoing in batch:
                    member = outgoing.member
                    if member.fanout.room.is_member(member):
                        member.fanout.dispatch([unavailable(member, outgoing.say.id)])
                continue
            for outgoing, answer in zip(batch, kept, strict=True):
                member, request = outgoing.member, outgoing.say.id
                if request is None:
                    continue
                if answer.again is not None:  # sent before, maybe through another process
                    ts, delivered = answer.again
                    earlier = Ack(id=request, seq=answer.seq, ts=ts, delivered=delivered)
                    if member.fanout.room.is_member(member):
                        member.fanout.dispatch([Delivery(earlier, (member,))])
                    continue
                ack = Ack(id=request, seq=answer.seq, ts=outgoing.ts, delivered=0)
                member.fanout.room.sent.remember(outgoing.lineage, request, ack, outgoing.ts)

    def leave(self, member: Member, name: str, reason: LeaveReason) -> None:
        """A member here left: its name is freed in Redis (its `left` comes from the stream)."""
        self._joined_at.pop(member, None)
        self._spawn(self._free(member, name, reason))

    async def _free(self, member: Member, name: str, reason: LeaveReason) -> None:
        try:
            await self.shared.leave(
                fold_name(name), self._connection_id(member), reason, self.server.clock()
            )
        except ClusterUnavailable as error:
            self._failed(error)  # the lease's end frees it, if this process goes
        finally:
            self._by_id.pop(self._ids.pop(member, ""), None)

    def who(self, member: Member) -> None:
        self._spawn(self._answer(member, self._who()))

    async def _who(self) -> Members:
        names = await self.shared.names()
        return Members(names=names, members=len(names))

    def history(self, member: Member, request: HistoryRequest) -> None:
        self._spawn(self._answer(member, self._history(request), request.id))

    async def _history(self, request: HistoryRequest) -> HistoryPage:
        limit = clamp_limit(request.limit, HISTORY_PAGE, HISTORY_PAGE_MAX)
        messages = await self.shared.before(request.before, limit + 1)
        more = len(messages) > limit
        return HistoryPage(messages=messages[1:] if more else messages, more=more, id=request.id)

    def search(self, member: Member, request: SearchRequest) -> None:
        self._spawn(self._answer(member, self._search(request), request.id))

    async def _search(self, request: SearchRequest) -> Results:
        limit = clamp_limit(request.limit, SEARCH_PAGE, SEARCH_PAGE_MAX)
        return Results(messages=await self.shared.search(request.text, limit), id=request.id)

    async def _answer(
        self, member: Member, asked: Coroutine[Any, Any, Any], request_id: str | None = None
    ) -> None:
        try:
            event = await asked
            self._worked()
        except ClusterUnavailable as error:
            self._failed(error)
            event = unavailable(member, request_id).event
        if member.fanout.room.is_member(member):
            member.fanout.dispatch([Delivery(event, (member,))])

    # --- the room's events, in order -----------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            try:
                events = await self.shared.events_after(self._last_id, block_ms=READ_BLOCK_MS)
                self._worked()
            except ClusterUnavailable as error:
                self._failed(error)
                await asyncio.sleep(RETRY_AFTER)
                continue
            for event in events:
                self._deliver(event)
                self._last_id = event.id

    def _deliver(self, entry: StreamEntry) -> None:
        """One event of the room to the members here that joined before it."""
        fanout = self.server.fanouts[self.shared.keys.room]
        room = fanout.room
        position = _stream_position(entry.id)
        own = None
        request: str | None = None
        if entry.origin == self.process:
            connection, _, rest = entry.tag.partition(" ")
            own = self._by_id.get(connection)
            request = rest[1:] if rest.startswith("=") else None
        late = {m for m, at in self._joined_at.items() if at >= position}
        for member in [m for m, at in self._joined_at.items() if at <= position]:
            del self._joined_at[member]  # its own join is delivered: everything after is for it
        if own is not None:
            late.add(own)
        if len(late) > 1:  # members joined meanwhile (rare): a list, member by member
            to = [h for h in room.handles() if h not in late]
            deliveries = [Delivery(entry.event, to)]
        else:  # to everyone (but the sender): encoded once, one write a member and turn
            left_out = next(iter(late), None)
            to = room.handles()  # copied and searched in C: this runs for every message
            if left_out is not None and room.is_member(left_out):
                to.remove(left_out)
            deliveries = [Delivery(entry.event, to, True, left_out)]
        event = entry.event
        if isinstance(event, Message) and own is not None and room.is_member(own):
            ack = Ack(id=request, seq=event.seq, ts=event.ts, delivered=entry.delivered)
            deliveries.append(Delivery(ack, (own,)))
        fanout.dispatch(deliveries)

    # --- the operator's acts, cluster-wide -----------------------------------------------------

    def share_ban(self, key: str, seconds: float | None) -> None:
        """Every other process bans `key` too (and removes its connections from there)."""
        fields = {"type": "ban", "key": key, "seconds": "" if seconds is None else str(seconds)}
        self._spawn(self._tell_all(fields))

    def share_unban(self, key: str) -> None:
        self._spawn(self._tell_all({"type": "unban", "key": key}))

    def kick_elsewhere(self, name: str, reason: str | None) -> None:
        """Ask the process that holds `name` to remove its member (the console's `/kick`)."""
        self._spawn(self._kick_elsewhere(name, reason))

    async def _kick_elsewhere(self, name: str, reason: str | None) -> None:
        try:
            process = await self.shared.holder_of(name)
        except ClusterUnavailable as error:
            log.warning("The kick of %s could not be passed on: %s", name, error)
            return
        if process is not None:
            fields = {"type": "kick", "process": process, "name": name, "reason": reason or ""}
            await self._tell_all(fields)

    async def _tell_all(self, fields: dict[str, str]) -> None:
        entry: Any = {**fields, "origin": self.process}
        try:
            await ask("tell the other processes", self.client.xadd(CONTROL, entry, maxlen=10_000))
        except ClusterUnavailable as error:
            log.warning("%s", error)

    async def _obey_forever(self) -> None:
        while True:
            try:
                found: Any = await ask(
                    "read the operator's acts",
                    self.reader.xread({CONTROL: self._control_id}, block=READ_BLOCK_MS),
                )
            except ClusterUnavailable:
                await asyncio.sleep(RETRY_AFTER)
                continue
            for entry_id, fields in found[0][1] if found else []:
                self._control_id = entry_id
                if fields.get("origin") != self.process:
                    self._obey(fields)

    def _obey(self, fields: dict[str, str]) -> None:
        """One act the operator did on another process."""
        server = self.server
        kind = fields.get("type")
        if kind == "ban":
            seconds = float(fields["seconds"]) if fields.get("seconds") else None
            removed = server.ban(fields["key"], seconds, share=False)
            log.info(
                "banned %s (from another process); removed %s", fields["key"], removed or "nobody"
            )
        elif kind == "unban":
            server.guard.unban(fields["key"])
        elif kind == "kick" and fields.get("process") == self.process:
            member = server.member(fields["name"])
            if member is not None:
                server.kick(member, fields.get("reason") or None)

    # --- the lease -----------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                self.alive = await self.leases.renew()
                for process in await self.leases.expired():
                    if process != self.process:
                        gone = await self.shared.forget_process(process, self.server.clock())
                        await self.leases.forget(process)
                        if gone:
                            log.info("a stopped process's %d members left", gone)
                self._worked()
            except ClusterUnavailable as error:
                self._failed(error)
