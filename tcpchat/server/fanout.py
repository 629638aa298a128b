"""How a room's events reach its members: the whole per-turn broadcast rule, in one place.

An event to everyone is encoded once (per mode) and kept in the turn's list of broadcasts; at the
end of the event-loop turn the list is joined once and handed to every member in one write.  A
member that got something of its own meanwhile, or is left out of one of them, catches up: it
gets its own copy of the broadcasts it missed, in order, before its own bytes.  So a burst costs
one system call per member and almost no Python per member and message.

A member found too slow in the middle of this (`drop_later`) is dropped only once the fan-out is
over, never inside it.  No sockets here: members are `Recipient`s, and what a drop does is the
server's (`on_drop`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from tcpchat.defaults import SECONDS
from tcpchat.protocol import LeaveReason, Mode, ServerEvent, encode_json, render_plain
from tcpchat.server.room import Delivery, Room

# In a room this big, events to everyone are gathered for GATHER_TIME before they are written: a
# crowd joining (each join is news to every member) costs one system call per member per few
# milliseconds instead of per join.  Smaller rooms get every event at once.
GATHER_FROM = 500
GATHER_TIME = 0.004 * SECONDS


# How a mode other than lines (JSON, plain) writes an event: an optional framing registers its
# own when it is switched on (`tcpchat.server.web` adds WebSocket frames), so the fan-out never
# imports it.
ENCODERS: dict[Mode, Callable[[ServerEvent], bytes]] = {}


class Outgoing:
    """One event encoded at most once per mode, however many members it goes to."""

    __slots__ = ("_json", "_other", "_plain", "event")

    def __init__(self, event: ServerEvent) -> None:
        self.event = event
        self._json: bytes | None = None
        self._plain: bytes | None = None
        self._other: dict[Mode, bytes] | None = None

    def bytes_for(self, mode: Mode) -> bytes:
        if mode is Mode.JSON:
            if self._json is None:
                self._json = encode_json(self.event)
            return self._json
        if mode is Mode.PLAIN or mode is Mode.UNDECIDED:
            if self._plain is None:
                self._plain = render_plain(self.event)
            return self._plain
        if self._other is None:
            self._other = {}
        data = self._other.get(mode)
        if data is None:
            data = self._other[mode] = ENCODERS[mode](self.event)
        return data


class TurnBroadcasts:
    """The events to every member (but one, maybe) during this turn of the event loop."""

    __slots__ = ("entries", "excluded")

    def __init__(self) -> None:
        self.entries: list[tuple[Outgoing, object]] = []
        self.excluded: set[object] = set()


class HasMode(Protocol):
    """A codec, as far as the fan-out cares: the mode its peer speaks."""

    @property
    def mode(self) -> Mode: ...


class Recipient(Protocol):
    """What the fan-out needs of a member: its mode, its place in the turn, and its outbox."""

    # No more writes once it closes or is marked for a drop.
    done: bool
    # How many of the turn's broadcasts it has in its outbox already; -1 while it is not a
    # member (they are not for it).
    turn_index: int

    @property
    def codec(self) -> HasMode: ...

    def queue(self, data: bytes, largest: int) -> None:
        """Add to its outbox; `largest` is the longest single event in `data`."""

    def take_broadcasts(self, data: bytes, largest: int) -> None:
        """The turn's broadcasts, joined once for every member alike; to be written now."""

    def flush(self) -> None:
        """Hand everything in its outbox to the transport."""

    def send(self, event: ServerEvent) -> None:
        """One event of its own, encoded by its codec."""


class Fanout:
    """One room's writes: deliveries in, each member's bytes out, with one write a turn."""

    def __init__(self, room: Room, on_drop: Callable[[Recipient, LeaveReason], None]) -> None:
        self.room = room
        self.turn = TurnBroadcasts()
        self._on_drop = on_drop
        self._pending_drops: collections.deque[tuple[Recipient, LeaveReason]] = collections.deque()
        self._dropping = False

    # --- a member's place in the turn ----------------------------------------------------------

    def joined(self, member: Recipient) -> None:
        """The turn's broadcasts from now on are for `member` too (the ones before were not)."""
        member.turn_index = len(self.turn.entries)

    def leaving(self, member: Recipient) -> None:
        """What went to everyone while `member` was here, then no more."""
        if member.turn_index >= 0:
            self.catch_up(member)
            member.turn_index = -1

    def catch_up(self, member: Recipient) -> None:
        """Queue the turn's broadcasts `member` has not had yet, in order."""
        entries = self.turn.entries
        mode = member.codec.mode
        for outgoing, exclude in entries[member.turn_index :]:
            if exclude is not member:
                data = outgoing.bytes_for(mode)
                member.queue(data, len(data))
        member.turn_index = len(entries)

    # --- sending -------------------------------------------------------------------------------

    def dispatch(self, deliveries: Iterable[Delivery]) -> None:
        """Send each delivery: to everyone through the turn's broadcasts (encoded once), to
        named members through their codec, which follows what its peer was sent."""
        for delivery in deliveries:
            if delivery.everyone:
                self._broadcast(delivery.event, delivery.exclude)
                continue
            for member in delivery.to:
                cast(Recipient, member).send(delivery.event)
        self.run_drops()

    def _broadcast(self, event: ServerEvent, exclude: object) -> None:
        """Keep an event to every member but `exclude` for the end of this turn (`end_turn`)."""
        entries = self.turn.entries
        if not entries:
            loop = asyncio.get_running_loop()
            if self.room.count < GATHER_FROM:
                loop.call_soon(self.end_turn)
            else:  # a crowd: one write per member for a few milliseconds' events, not per turn
                loop.call_later(GATHER_TIME, self.end_turn)
        entries.append((Outgoing(event), exclude))
        if exclude is not None:
            self.turn.excluded.add(exclude)

    def end_turn(self) -> None:
        """Send the turn's broadcasts: joined once per mode and written whole to every member
        that had nothing else this turn; the others catch up one event at a time."""
        entries = self.turn.entries
        if not entries:
            return
        excluded = self.turn.excluded
        shared: dict[Mode, tuple[bytes, int]] = {}
        members = cast("list[Recipient]", self.room.handles())
        try:
            for member in members:
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
                    self.catch_up(member)
                    member.flush()
                member.turn_index = 0
        except BaseException:
            # Our bug, logged by the event loop: start the next turn afresh rather than stall
            # every later broadcast behind a list that is never cleared.
            for member in members:
                member.turn_index = 0
            raise
        finally:
            entries.clear()
            excluded.clear()
        self.run_drops()

    # --- drops ---------------------------------------------------------------------------------

    def drop_later(self, member: Recipient, reason: LeaveReason) -> None:
        """Mark a member to drop once the current fan-out is over (never in the middle of one)."""
        if not member.done:
            member.done = True
            if not self._pending_drops:  # drained after the current fan-out, or just after it
                asyncio.get_running_loop().call_soon(self.run_drops)
            self._pending_drops.append((member, reason))

    def run_drops(self) -> None:
        """Drop the members marked slow, one after another (a drop's `left` may mark more).

        Not re-entered from the fan-outs it causes: the loop here takes those too, so hundreds
        of drops at once are a loop, not a recursion.
        """
        if self._dropping:
            return
        self._dropping = True
        try:
            while self._pending_drops:
                self._on_drop(*self._pending_drops.popleft())
        finally:
            self._dropping = False
