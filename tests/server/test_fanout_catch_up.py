"""A member catching up in the middle of a turn gets exactly what it would get event by event:
the broadcasts it has not had, but those it is left out of, with its own bytes at their places.

`Fanout.catch_up` cuts these from the turn's broadcasts joined once (as the end of the turn
does); this compares it, on any turn, with the plain rule written out one event at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from tcpchat.protocol import Message, Mode
from tcpchat.server.fanout import Fanout, Outgoing
from tcpchat.server.room import Room, RoomLimits

TS = datetime(2026, 12, 3, tzinfo=timezone.utc)


@dataclass
class Codec:
    mode: Mode = Mode.JSON


@dataclass(eq=False)
class Member:
    """A `Recipient` that keeps what it was given, in order (what its transport would get)."""

    turn_index: int = 0
    turn_own: list[tuple[int, bytes]] | None = None
    done: bool = False
    codec: Codec = field(default_factory=Codec)
    got: bytearray = field(default_factory=bytearray)

    def queue(self, data: bytes, largest: int) -> None:
        assert largest >= 0
        self.got += data

    def take_broadcasts(self, data: bytes, largest: int) -> None:
        self.got += data

    def flush(self) -> None:
        pass

    def send(self, event: object) -> None:
        raise AssertionError("no event of its own here")


# A turn: each step is a broadcast (left out for our member, or not) or a write of its own.
steps = st.lists(st.one_of(st.booleans(), st.binary(min_size=1, max_size=8)), max_size=30)


@given(
    before=st.integers(0, 5),
    turn=steps,
    cut=st.one_of(st.none(), st.integers(0, 30)),
    mode=st.sampled_from([Mode.JSON, Mode.PLAIN]),
    joined_before=st.booleans(),
)
def test_catch_up_gives_what_the_turn_gives_one_event_at_a_time(
    before: int, turn: list[bool | bytes], cut: int | None, mode: Mode, joined_before: bool
) -> None:
    """A few broadcasts behind, a member takes them one by one; more, or when another member
    had the turn joined already (`joined_before`), it gets slices of the joined copy."""
    fanout = Fanout(Room(RoomLimits("test", 1024, 0)), lambda member, reason: None)
    member, other = Member(codec=Codec(mode)), Member()
    entries = fanout.turn.entries
    for n in range(before):  # broadcasts it had already
        entries.append((_outgoing(n), other))
    member.turn_index = len(entries)
    expected = bytearray()
    own: list[tuple[int, bytes]] = []
    for n, step in enumerate(turn, start=before):
        if isinstance(step, bytes):
            own.append((len(entries), step))
            continue
        outgoing = _outgoing(n)
        left_out = step
        if left_out:
            fanout.turn.excluded.setdefault(member, []).append(len(entries))
        entries.append((outgoing, member if left_out else other))
    member.turn_own = own or None
    # `upto` is only ever the place of its last own write (a member closing mid-turn).
    upto = None if cut is None or not own else own[-1][0]
    end = len(entries) if upto is None else upto
    mine = 0
    for index in range(member.turn_index, end):
        while mine < len(own) and own[mine][0] <= index:
            expected += own[mine][1]
            mine += 1
        outgoing, exclude = entries[index]
        if exclude is not member:
            expected += outgoing.bytes_for(mode)
    for _, data in own[mine:]:
        expected += data

    if joined_before:
        fanout.turn.joined(mode)
    fanout.catch_up(member, upto=upto)

    assert bytes(member.got) == bytes(expected)
    assert member.turn_index == end and member.turn_own is None
    fanout.catch_up(member, upto=upto)  # caught up: nothing twice
    assert bytes(member.got) == bytes(expected)


def _outgoing(n: int) -> Outgoing:
    return Outgoing(Message(seq=n + 1, sender="bob", text=f"broadcast {n}", ts=TS))
