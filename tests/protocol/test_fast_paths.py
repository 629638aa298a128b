"""The protocol's fast paths (a `message`, `ack`, `joined` or `left` written straight into a line, a `say` read
without the general plan) give exactly what the general paths give, on any input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tcpchat.protocol import (
    Ack,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Say,
    Welcome,
    decode_json,
    encode_json,
)
from tcpchat.protocol.jsonlines import _ENCODER, _BadField, _build, event_to_dict, format_ts
from tcpchat.protocol.names import NameList, SortedNames
from tcpchat.server.clock import MillisecondClock

# Text as it may reach an encoder: any Unicode but lone surrogates (which no path can encode).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


def general(event: Message | Ack | Joined | Left | Welcome | Members) -> bytes:
    return _ENCODER.encode(event_to_dict(event)).encode() + b"\n"


@given(st.integers(0, 2**62), texts, texts, times, st.booleans())
def test_a_message_is_written_as_the_general_path_writes_it(
    seq: int, sender: str, text: str, ts: datetime, me: bool
) -> None:
    message = Message(seq=seq, sender=sender, text=text, ts=ts, me=me)
    assert encode_json(message) == general(message)


@given(st.none() | texts, st.none() | st.integers(0, 2**62), times, st.integers(0, 10**6))
def test_an_ack_is_written_as_the_general_path_writes_it(
    request_id: str | None, seq: int | None, ts: datetime, delivered: int
) -> None:
    ack = Ack(id=request_id, seq=seq, ts=ts, delivered=delivered)
    assert encode_json(ack) == general(ack)


@given(texts, st.integers(0, 10**6), st.sampled_from(LeaveReason), times)
def test_a_join_and_a_leave_are_written_as_the_general_path_writes_them(
    name: str, members: int, reason: LeaveReason, ts: datetime
) -> None:
    joined = Joined(name=name, members=members, ts=ts)
    left = Left(name=name, members=members, reason=reason, ts=ts)
    assert encode_json(joined) == general(joined)
    assert encode_json(left) == general(left)


@given(st.lists(st.tuples(st.booleans(), texts), max_size=40), texts)
def test_names_kept_with_their_json_are_written_as_any_list_of_names(
    changes: list[tuple[bool, str]], motd: str
) -> None:
    kept, names = SortedNames(), {}
    for adding, name in changes:
        key = name.casefold()
        if adding and key not in names:
            kept.add(key, name)
            names[key] = name
        elif not adding and key in names:
            kept.remove(key)
            del names[key]
    snapshot = kept.snapshot()
    assert isinstance(snapshot, NameList)
    assert snapshot == [names[key] for key in sorted(names)]
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    history = [Message(seq=1, sender="a", text='"names":[]', ts=now)]
    welcome = Welcome(name=motd, members=len(snapshot), names=snapshot, server=motd, motd=motd,
                      max_text=1024, version=1, history=history, seq=1, token="t")  # fmt: skip
    plain = Welcome(name=motd, members=len(snapshot), names=list(snapshot), server=motd, motd=motd,
                    max_text=1024, version=1, history=history, seq=1, token="t")  # fmt: skip
    assert encode_json(welcome) == encode_json(plain) == general(plain)
    members = Members(names=snapshot, members=len(snapshot))
    assert encode_json(members) == general(Members(names=list(snapshot), members=len(snapshot)))


def test_a_time_formatted_again_is_the_same_text_and_another_is_its_own() -> None:
    first = datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=timezone.utc)
    second = first + timedelta(milliseconds=1)
    assert format_ts(first) == format_ts(first) == "2026-12-03T09:30:00.123Z"
    assert format_ts(second) == "2026-12-03T09:30:00.124Z"
    assert format_ts(first) == "2026-12-03T09:30:00.123Z"  # not the last one's text
    elsewhere = first.astimezone(timezone(timedelta(hours=2)))
    assert format_ts(elsewhere) == "2026-12-03T09:30:00.123Z"


values = st.none() | st.booleans() | st.integers() | texts | st.lists(st.integers(), max_size=2)


@given(
    st.fixed_dictionaries(
        {"type": st.just("say")},
        optional={"text": values, "id": values, "me": values, "extra": values},
    )
)
def test_a_say_is_read_as_the_general_path_reads_it(obj: dict[str, Any]) -> None:
    try:
        expected: Any = _build(Say, obj)
    except _BadField:
        expected = "refused"
    got = decode_json(json.dumps(obj))
    if expected == "refused":
        assert got.__class__.__name__ == "Invalid" and got.code.value == "bad_message"
    else:
        assert got == expected


def test_the_clock_gives_one_object_per_millisecond_in_utc() -> None:
    clock = MillisecondClock()
    first = clock()
    assert first.tzinfo is timezone.utc and first.microsecond % 1000 == 0
    assert abs((first - datetime.now(timezone.utc)).total_seconds()) < 1
    same = [clock() for _ in range(3)]
    # Within one millisecond the very object comes back (it may tick once meanwhile).
    assert len({id(t) for t in [first, *same]}) <= 2
    assert same == sorted(same)
