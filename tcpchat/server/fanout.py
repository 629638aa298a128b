"""How a room's events reach its members: the whole per-turn broadcast rule, in one place.

An event to everyone is encoded once (per mode) and kept in the turn's list of broadcasts; at the
end of the event-loop turn the list is joined once and handed to every member in one write.  A
member that got something of its own meanwhile (an ack, an answer) keeps it at its place among
the broadcasts, and one that is left out of some (its own messages) skips them: its write is cut
from the same joined bytes, a slice between each of its own places, so its cost grows with what
is its own, not with the number of broadcasts.  So a burst costs one system call per member and
almost no Python per member and message.

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

# In a room this big, events to everyone are gathered for GATHER_TIME before they are written:
# each write costs a system call per member (most of the server's time in a busy room), and a
# millisecond's wait puts twice the messages in each (measured: 1.97 -> 2.31 M deliveries per
# CPU-second with 100 members, p99 unchanged).  A crowd (CROWD_FROM) gathers for longer: a crowd
# joining (each join is news to every member) then costs one write per member per few
# milliseconds instead of per join.  Smaller rooms get every event at once.
GATHER_FROM = 50
GATHER_TIME = 0.001 * SECONDS
CROWD_FROM = 500
CROWD_TIME = 0.004 * SECONDS
# A member this few broadcasts behind catches up one by one (see `Fanout.catch_up`).
FEW_TO_CATCH_UP = 8


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

    __slots__ = ("_joined", "entries", "excluded")

    def __init__(self) -> None:
        self.entries: list[tuple[Outgoing, object]] = []
        # Each member left out of some of them, and which (their places in `entries`).
        self.excluded: dict[object, list[int]] = {}
        # The copy of the entries joined last in each mode: once more are added, it still
        # holds the ones before them.
        self._joined: dict[Mode, _Joined] = {}

    def joined(self, mode: Mode, upto: int | None = None) -> _Joined:
        """The entries in `mode` joined once however many members ask (the members catching up
        when a commit releases many acks at once, then the end of the turn): every entry so
        far, or a copy joined earlier in the turn that holds the first `upto` (entries are only
        ever added, until the turn ends)."""
        joined = self._joined.get(mode)
        needed = len(self.entries) if upto is None else upto
        if joined is None or joined.count < needed or (upto is None and joined.count != needed):
            joined = self._joined[mode] = _Joined(
                [outgoing.bytes_for(mode) for outgoing, _ in self.entries]
            )
        return joined

    def has_joined(self, mode: Mode, upto: int) -> bool:
        """Whether a copy joined earlier holds the first `upto` entries in `mode`."""
        joined = self._joined.get(mode)
        return joined is not None and joined.count >= upto

    def clear(self) -> None:
        self.entries.clear()
        self.excluded.clear()
        self._joined.clear()


class _Joined:
    """The turn's broadcasts in one mode: joined once, with where each one starts."""

    __slots__ = ("count", "data", "largest", "starts")

    def __init__(self, pieces: list[bytes]) -> None:
        self.count = len(pieces)
        self.data = b"".join(pieces)
        self.largest = max(map(len, pieces), default=0)
        starts = [0]
        total = 0
        for piece in pieces:
            total += len(piece)
            starts.append(total)
        self.starts = starts

    def cut(
        self,
        start: int,
        own: list[tuple[int, bytes]] | None,
        left_out: list[int] | None,
        end: int | None = None,
    ) -> tuple[bytes, int]:
        """The broadcasts from `start` up to the one at `end` (the last one when None), with
        `own` bytes at their places (each before the broadcast at its place; none is past
        `end`) and without those at the places `left_out`; and the longest single event."""
        end = self.count if end is None else end
        marks: list[tuple[int, int, bytes]] = [(at, 0, data) for at, data in own or ()]
        marks += [(at, 1, b"") for at in left_out or () if start <= at < end]
        marks.sort(key=lambda mark: mark[:2])
        view, starts = memoryview(self.data), self.starts
        pieces: list[bytes | memoryview] = []
        at = start
        for place, kind, data in marks:
            if place > at:
                pieces.append(view[starts[at] : starts[place]])
                at = place
            if kind == 0:
                pieces.append(data)
            else:
                at = place + 1
        if at < end:
            pieces.append(view[starts[at] : starts[end]])
        largest = max([self.largest, *(len(data) for _, data in own or ())])
        return b"".join(pieces), largest


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
    # Its own bytes written during the turn, each with its place among the broadcasts.
    turn_own: list[tuple[int, bytes]] | None

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

    def catch_up(self, member: Recipient, upto: int | None = None) -> None:
        """Queue the turn's broadcasts `member` has not had yet (up to the place `upto`) and
        its own bytes among them, in order, in one piece.

        A few are taken one by one (a member that joined during the turn, say); more are cut
        from the turn's broadcasts joined once, as at its end, so that many members catching up
        at once (the acks a commit releases) cost one join and a few slices each."""
        turn = self.turn
        end = len(turn.entries) if upto is None else upto
        own, member.turn_own = member.turn_own, None
        start = member.turn_index
        member.turn_index = end
        mode = member.codec.mode
        if end - start > FEW_TO_CATCH_UP or turn.has_joined(mode, end):
            member.queue(*turn.joined(mode, end).cut(start, own, turn.excluded.get(member), end))
            return
        own = own or []
        entries = turn.entries
        parts: list[bytes] = []
        mine = 0
        for index in range(start, end):
            while mine < len(own) and own[mine][0] <= index:
                parts.append(own[mine][1])
                mine += 1
            outgoing, exclude = entries[index]
            if exclude is not member:
                parts.append(outgoing.bytes_for(mode))
        parts += [data for _, data in own[mine:]]
        if parts:
            member.queue(b"".join(parts), max(map(len, parts)))

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
            count = self.room.count
            if count < GATHER_FROM:
                loop.call_soon(self.end_turn)
            else:  # one write per member for a moment's events, not per turn
                loop.call_later(CROWD_TIME if count >= CROWD_FROM else GATHER_TIME, self.end_turn)
        if exclude is not None:
            self.turn.excluded.setdefault(exclude, []).append(len(entries))
        entries.append((Outgoing(event), exclude))

    def end_turn(self) -> None:
        """Send the turn's broadcasts: joined once per mode and written whole to every member
        that had nothing else this turn; the others get slices of the same bytes around their
        own (see the module's note)."""
        entries = self.turn.entries
        if not entries:
            return
        turn = self.turn
        excluded = turn.excluded
        shared: dict[Mode, _Joined] = {}
        members = cast("list[Recipient]", self.room.handles())
        try:
            for member in members:
                if member.done:
                    continue
                mode = member.codec.mode
                joined = shared.get(mode)
                if joined is None:
                    joined = shared[mode] = turn.joined(mode)
                own, left_out = member.turn_own, excluded.get(member)
                if own is None and left_out is None and member.turn_index == 0:
                    member.take_broadcasts(joined.data, joined.largest)
                else:
                    member.turn_own = None
                    member.take_broadcasts(*joined.cut(member.turn_index, own, left_out))
                member.turn_index = 0
        except BaseException:
            # Our bug, logged by the event loop: start the next turn afresh rather than stall
            # every later broadcast behind a list that is never cleared.
            for member in members:
                member.turn_index = 0
                member.turn_own = None
            raise
        finally:
            turn.clear()
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
