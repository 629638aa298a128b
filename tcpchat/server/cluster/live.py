"""The room's events, from Redis to this process's members, in the one order every process
delivers them in.

One task reads the room's `events` stream from where this process joined and gives each event
to the members here: a message to all but its sender (who gets its `ack` at that place), a join
to all but the joiner, a private message to its one recipient (then deleted: private messages
are not kept).  A member that joined here lately gets only the events after its own `joined`,
since its `welcome` covered the rest.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tcpchat.protocol import Ack, Joined, LeaveReason, Left, Message, Private
from tcpchat.server.cluster.shared_room import READ_BLOCK_MS, RETRY_AFTER, ClusterUnavailable
from tcpchat.server.cluster.shared_room import Event as StreamEntry
from tcpchat.server.room import Delivery

if TYPE_CHECKING:
    from tcpchat.server.cluster.side import ClusterSide
    from tcpchat.server.member import Member

log = logging.getLogger("tcpchat.server")


def stream_position(event_id: str) -> tuple[int, int]:
    """A stream id as numbers, to compare two of them."""
    milliseconds, _, number = event_id.partition("-")
    return int(milliseconds), int(number or 0)


class LiveEvents:
    """The delivery of one room's events to the members of this process (`side`)."""

    def __init__(self, side: ClusterSide) -> None:
        self.side = side
        self.last_id = "0-0"  # the newest event delivered
        self.seen_seq: int | None = None  # the newest message delivered
        # Where the own `joined` of each member that joined here lately is in the stream, until
        # delivery passes it: such a member gets only the events after it.
        self.joined_at: dict[Member, tuple[int, int]] = {}

    async def start(self) -> None:
        """Deliver from now on: a process that has just started has no members yet."""
        self.last_id = await self.side.shared.newest_event_id()
        self.side.spawn(self.deliver_forever())

    async def deliver_forever(self) -> None:
        """Hand the room's events to the members here, in order, from where this process
        joined; through Redis's failures (each said once) until cancelled."""
        recovering = False
        while True:
            try:
                if recovering:  # the counter may have been lost with Redis: never go back
                    await self.side.shared.raise_seq(self.seen_seq or 0)
                    recovering = False
                events = await self.side.shared.events_after(self.last_id, block_ms=READ_BLOCK_MS)
                self.side.worked()
                for event in events:
                    if isinstance(event.event, Message):
                        await self._fill_gap(event.event.seq)
                    self._deliver(event)
                    self.last_id = event.id
            except ClusterUnavailable as error:
                self.side.failed(error)
                self.side.publisher.refuse_waiting()  # their acks cannot come meanwhile
                recovering = True
                await asyncio.sleep(RETRY_AFTER)

    async def _fill_gap(self, seq: int) -> None:
        """Messages come with consecutive `seq`s; a jump means the live events were trimmed
        past where this process stopped reading (it was cut off long): the ones between are
        read from the history and delivered first, in order."""
        seen = self.seen_seq
        if seen is None or seq <= seen + 1:
            self.seen_seq = seq
            return
        missed = await self.side.shared.before(seq, seq - seen - 1)  # seen+1 .. seq-1
        self.seen_seq = seq
        room = self.side.server.fanouts[self.side.shared.keys.room].room
        settled = [m for m in room.handles() if m not in self.joined_at]
        log.warning("%d messages were read again from the history after a break", len(missed))
        self.side.server.fanouts[self.side.shared.keys.room].dispatch(
            [Delivery(message, settled) for message in missed]
        )

    def _deliver(self, entry: StreamEntry) -> None:
        """One event of the room to the members here that joined before it."""
        fanout = self.side.server.fanouts[self.side.shared.keys.room]
        room = fanout.room
        event = entry.event
        if isinstance(event, Private):
            self._deliver_private(entry)
            return
        position = stream_position(entry.id)
        own = None
        request: str | None = None
        acknowledged = False
        if entry.origin == self.side.process and isinstance(event, Message | Joined):
            connection, _, rest = entry.tag.partition(" ")  # a message's: `SERIAL[=ID]`
            own = self.side.member_with(connection)
            serial, is_request, request_id = rest.partition("=")
            request = request_id if is_request else None
            acknowledged = bool(serial) and self.side.publisher.answered_live(int(serial))
        elif isinstance(event, Left):
            own = self._lost_name(entry.holder, event.reason)
        late = {m for m, at in self.joined_at.items() if at >= position}
        for member in [m for m, at in self.joined_at.items() if at <= position]:
            del self.joined_at[member]  # its own join is delivered: everything after is for it
        if own is not None:
            late.add(own)
        if len(late) > 1:  # members joined meanwhile (rare): a list, member by member
            to = [h for h in room.handles() if h not in late]
            deliveries = [Delivery(event, to)]
        else:  # to everyone (but the sender): encoded once, one write a member and turn
            left_out = next(iter(late), None)
            to = room.handles()  # copied and searched in C: this runs for every message
            if left_out is not None and room.is_member(left_out):
                to.remove(left_out)
            deliveries = [Delivery(event, to, True, left_out)]
        if isinstance(event, Message) and acknowledged and own is not None and room.is_member(own):
            ack = Ack(id=request, seq=event.seq, ts=event.ts, delivered=entry.delivered)
            deliveries.append(Delivery(ack, (own,)))
        fanout.dispatch(deliveries)

    def _deliver_private(self, entry: StreamEntry) -> None:
        """A private message for a member here: delivered, then deleted from Redis."""
        member = self.side.member_holding(entry.holder)
        if member is None:
            return
        if member.fanout.room.is_member(member):
            member.fanout.dispatch([Delivery(entry.event, (member,))])
        self.side.spawn(self._forget_private(entry.id))

    async def _forget_private(self, event_id: str) -> None:
        try:
            await self.side.shared.delivered(event_id)
        except ClusterUnavailable:
            pass  # trimmed with the rest of the events in time

    def _lost_name(self, holder: str, reason: LeaveReason) -> Member | None:
        """A `left` about a member still here: its name was taken over with its token (it
        goes) or freed while this process was taken for dead (it claims it again).  That
        member does not see the `left`."""
        if not holder:
            return None
        member = self.side.member_holding(holder)
        if member is None or not member.fanout.room.is_member(member):
            return None
        if reason is LeaveReason.REPLACED:
            self.side.replace(holder)
        else:
            self.side.reclaim(member)
        return member
