"""A process's members' messages on their way to Redis: in the order they came, each turn's in
one round trip, each answered once (its `ack` from the room's events, or `unavailable`).

A message whose answer from Redis is lost (Redis went away just then) may have been kept all
the same: its sender is told `unavailable` (it may send the id again, which Redis answers with
the first `ack`), and the ack that the stream then brings is not sent as well.  So is one that
Redis took but whose place in the stream cannot be read (Redis went away before it was): while
Redis is away, nobody waits for an answer.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from tcpchat.protocol import Ack, Say
from tcpchat.server.cluster.shared_room import ClusterUnavailable, Said
from tcpchat.server.once import request_key
from tcpchat.server.room import Delivery, unavailable

if TYPE_CHECKING:
    from tcpchat.server.cluster.side import ClusterSide
    from tcpchat.server.member import Member

# Messages refused as `unavailable` remembered in case Redis kept them after all (a lost answer
# is found out within moments of Redis answering again).
REFUSALS_KEPT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class _Outgoing:
    """A member's message on its way to Redis."""

    member: Member
    say: Say
    name: str
    tag: str
    lineage: int
    ts: datetime
    serial: int  # this process's number for it (see `Publisher.answered_live`)
    request: bytes  # its id's `request_key` (empty without an id)


class Publisher:
    """The messages of this process's members (`side`), to Redis."""

    def __init__(self, side: ClusterSide) -> None:
        self.side = side
        self._outbox: list[_Outgoing] = []  # messages for Redis, in the order they came
        self._news = asyncio.Event()
        # Messages sent to Redis whose sender has not been answered yet, and those answered
        # `unavailable` because Redis failed, which Redis may still have kept.
        self._serial = 0
        self._unanswered: dict[int, _Outgoing] = {}
        self._refused: collections.OrderedDict[int, None] = collections.OrderedDict()

    def say(self, member: Member, say: Say) -> None:
        """A member's `say`: numbered in Redis; its `message` and `ack` come from the stream."""
        room = member.fanout.room
        now = self.side.server.clock()
        request = b"" if say.id is None else request_key(say.id)
        refused = room.say_refusal(member, say, now, request or None)
        if refused is not None:  # an id sent before on this process, or a text refused
            member.fanout.dispatch(refused)
            return
        lineage = room.lineage_of(member)
        name = room.name_of(member)
        assert name is not None
        self._serial += 1
        serial = self._serial
        with_id = "" if say.id is None else "=" + say.id
        tag = f"{self.side.connection_id(member)} {serial}{with_id}"
        outgoing = _Outgoing(member, say, name, tag, lineage, now, serial, request)
        self._unanswered[serial] = outgoing
        self._outbox.append(outgoing)
        self._news.set()

    def answered_live(self, serial: int) -> bool:
        """The stream brought a message of ours back: whether its sender is to get its ack
        now (not when it was told `unavailable` meanwhile)."""
        if serial in self._refused:
            del self._refused[serial]
            return False
        self._unanswered.pop(serial, None)
        return True

    def refuse_waiting(self) -> None:
        """Redis cannot be read: every message still waiting for its answer is refused now
        (`unavailable`), those not sent yet are not sent, and the acks of those Redis kept are
        not sent when the stream brings them (their ids, sent again, are answered with them)."""
        self._outbox.clear()
        for outgoing in list(self._unanswered.values()):
            self._refuse(outgoing)

    def _refuse(self, outgoing: _Outgoing) -> None:
        del self._unanswered[outgoing.serial]
        self._refused[outgoing.serial] = None
        if len(self._refused) > REFUSALS_KEPT:
            self._refused.popitem(last=False)
        member = outgoing.member
        if member.fanout.room.is_member(member):
            member.fanout.dispatch([unavailable(member, outgoing.say.id)])

    async def publish_forever(self) -> None:
        """Send the members' messages to Redis in the order they came, all that waited in one
        round trip (so a member's messages keep their order, and a busy turn costs one)."""
        while True:
            await self._news.wait()
            self._news.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            try:
                kept = await self.side.shared.say_many(
                    [
                        Said(o.name, o.say.text, o.ts, o.say.me, o.tag, o.lineage, o.request)
                        for o in batch
                    ]
                )
                self.side.worked()
            except ClusterUnavailable as error:
                self.side.failed(error)
                for outgoing in batch:
                    if outgoing.serial in self._unanswered:  # else answered from the stream
                        self._refuse(outgoing)  # (Redis had kept it) or refused already
                continue
            for outgoing, answer in zip(batch, kept, strict=True):
                member, request = outgoing.member, outgoing.say.id
                # Told `unavailable` while Redis answered (`refuse_waiting`): no ack as well.
                told = outgoing.serial in self._refused
                if answer.again is not None:  # nothing was added: no ack comes from the stream
                    self._unanswered.pop(outgoing.serial, None)
                if request is None:
                    continue
                if answer.again is not None:  # sent before, maybe through another process
                    ts, delivered = answer.again
                    earlier = Ack(id=request, seq=answer.seq, ts=ts, delivered=delivered)
                    if not told and member.fanout.room.is_member(member):
                        member.fanout.dispatch([Delivery(earlier, (member,))])
                    continue
                member.fanout.room.sent.remember(
                    outgoing.lineage, outgoing.request, answer.seq, outgoing.ts, 0
                )
