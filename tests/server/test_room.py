"""The room's rules (PROTOCOL.md, Rules): seq without gaps, counts after the change, name folding,
history, and who gets which event. No network: the room only returns `Delivery` values.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpchat.protocol import (
    Ack,
    Dm,
    Error,
    ErrorCode,
    Hello,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Nick,
    Private,
    Renamed,
    Say,
    Welcome,
    confusable_keys,
    fold_name,
)
from tcpchat.server.messages import MemoryLog
from tcpchat.server.once import WINDOW, SentIds, request_key
from tcpchat.server.room import Delivery, Room, RoomLimits

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# Helpers. Handles are plain strings here; the server uses its connection objects.


def make_room(*names: str, **limits: Any) -> Room:
    """A room (server "testhost", max_text 1024, history 50 unless given) with `names` joined,
    each under a handle equal to its name."""
    room = Room(
        RoomLimits(**{"server_name": "testhost", "max_text": 1024, "history": 50, **limits})
    )
    for name in names:
        assert isinstance(join(room, name)[0].event, Welcome)
    return room


def join(room: Room, handle: str, name: str | None = None, **hello: Any) -> list[Delivery]:
    return room.join(handle, Hello(name=handle if name is None else name, **hello), NOW)


def say(room: Room, handle: str, text: str = "hello", id: str | None = None) -> list[Delivery]:
    return room.say(handle, Say(text=text, id=id), NOW)


def events_for(deliveries: Sequence[Delivery], handle: str) -> list[Any]:
    """Every event `handle` receives from one call, in order."""
    return [delivery.event for delivery in deliveries if handle in delivery.to]


def only_event(deliveries: Sequence[Delivery], cls: type) -> Any:
    """The one event of type `cls` among the deliveries."""
    (event,) = [d.event for d in deliveries if isinstance(d.event, cls)]
    return event


def recipients(deliveries: Sequence[Delivery], cls: type) -> set[str]:
    (delivery,) = [d for d in deliveries if isinstance(d.event, cls)]
    return set(delivery.to)


def error_to(deliveries: Sequence[Delivery], handle: str, code: ErrorCode) -> Error:
    """Assert that the answer is one `error` with `code`, to `handle` only; return it."""
    assert len(deliveries) == 1, deliveries
    (delivery,) = deliveries
    assert list(delivery.to) == [handle]
    assert isinstance(delivery.event, Error), delivery.event
    assert delivery.event.code is code, delivery.event
    return delivery.event


# --------------------------------------------------------------------------------------------
# Joining.


def test_first_member_is_welcomed_alone_and_nobody_is_told() -> None:
    room = make_room(motd="Be nice.")
    deliveries = join(room, "alice")
    (welcome,) = events_for(deliveries, "alice")
    assert len(welcome.token) >= 40  # a secret nobody guesses
    assert welcome == Welcome(
        name="alice",
        members=1,
        names=["alice"],
        server="testhost",
        motd="Be nice.",
        max_text=1024,
        version=1,
        history=[],
        seq=0,
        token=welcome.token,
        gap=False,
    )
    assert recipients(deliveries, Joined) == set()


def test_join_is_announced_to_the_others_with_the_count_after() -> None:
    room = make_room("alice", "bob")
    deliveries = join(room, "carol")
    assert only_event(deliveries, Joined) == Joined(name="carol", members=3, ts=NOW)
    assert recipients(deliveries, Joined) == {"alice", "bob"}
    welcome = only_event(deliveries, Welcome)
    assert recipients(deliveries, Welcome) == {"carol"}
    assert welcome.members == 3
    assert welcome.names == ["alice", "bob", "carol"]
    assert room.count == 3


def test_welcome_names_are_sorted_whatever_the_order_of_joining() -> None:
    room = make_room("zed", "Bob", "alice")
    welcome = only_event(join(room, "Carol"), Welcome)
    assert welcome.names == ["alice", "Bob", "Carol", "zed"]


def test_name_is_stored_stripped_and_composed() -> None:
    room = make_room()
    welcome = only_event(join(room, "h", " e\u0301mile "), Welcome)
    assert welcome.name == "émile"
    assert room.name_of("h") == "émile"


def test_joining_twice_is_already_joined_and_changes_nothing() -> None:
    room = make_room("alice")
    error = error_to(join(room, "alice", "alice2"), "alice", ErrorCode.ALREADY_JOINED)
    assert not error.code.is_fatal
    assert room.count == 1
    assert room.name_of("alice") == "alice"


@pytest.mark.parametrize("variant", ["alice", "Alice", "ALICE", "ａｌｉｃｅ", " alice "])
def test_name_taken_after_folding(variant: str) -> None:
    room = make_room("alice")
    error_to(join(room, "other", variant), "other", ErrorCode.NAME_TAKEN)
    assert room.count == 1
    assert not room.is_member("other")


@pytest.mark.parametrize("name", ["", "   ", "two words", "a@b", "x" * 33, "server", "Server"])
def test_invalid_name_is_bad_name(name: str) -> None:
    room = make_room("alice")
    error_to(join(room, "other", name), "other", ErrorCode.BAD_NAME)
    assert room.count == 1


@pytest.mark.parametrize("code", [ErrorCode.BAD_NAME, ErrorCode.NAME_TAKEN])
def test_after_a_refused_name_the_same_connection_may_try_another(code: ErrorCode) -> None:
    room = make_room("alice")
    refused = "alice" if code is ErrorCode.NAME_TAKEN else "bad name"
    error = error_to(join(room, "h", refused), "h", code)
    assert not error.code.is_fatal
    assert only_event(join(room, "h", "bob"), Welcome).name == "bob"


@pytest.mark.parametrize("look_alike", ["аlice", "ALІCE", "alice.", "a_lice"])
def test_a_name_that_looks_like_a_present_member_is_taken(look_alike: str) -> None:
    room = make_room("alice")
    error = error_to(join(room, "h", look_alike), "h", ErrorCode.NAME_TAKEN)
    assert error.message == (
        f"The name {look_alike!r} looks like 'alice', who is here; choose another."
    )
    assert not room.is_member("h")


@pytest.mark.parametrize("name", ["ѕеrvеr", "server.", "ꜱerver"])
def test_a_name_that_looks_like_server_is_bad_name(name: str) -> None:
    room = make_room("alice")
    error = error_to(join(room, "h", name), "h", ErrorCode.BAD_NAME)
    assert "looks like 'server'" in error.message


def test_a_look_alike_name_is_free_again_after_its_member_left_or_was_renamed() -> None:
    room = make_room("alice", "bob")
    room.leave("alice", LeaveReason.QUIT, NOW)
    assert only_event(join(room, "h", "аlice"), Welcome).name == "аlice"
    room.nick("bob", Nick("robert"), NOW)
    assert only_event(join(room, "h2", "b0b"), Welcome).name == "b0b"
    error_to(join(room, "h3", "rоbert"), "h3", ErrorCode.NAME_TAKEN)


def test_a_rename_may_not_look_like_another_member_but_may_look_like_ones_own() -> None:
    room = make_room("alice", "bob")
    error_to(room.nick("bob", Nick("аlice"), NOW), "bob", ErrorCode.NAME_TAKEN)
    assert only_event(room.nick("alice", Nick("аlice"), NOW), Renamed).new == "аlice"
    error_to(join(room, "h", "alice"), "h", ErrorCode.NAME_TAKEN)


def test_name_is_free_again_after_its_member_left() -> None:
    room = make_room("alice")
    room.leave("alice", LeaveReason.QUIT, NOW)
    assert only_event(join(room, "h", "ALICE"), Welcome).name == "ALICE"


def test_wrong_version_is_fatal_version_unsupported() -> None:
    room = make_room()
    error = error_to(join(room, "alice", version=2), "alice", ErrorCode.VERSION_UNSUPPORTED)
    assert error.code.is_fatal
    assert room.count == 0


@pytest.mark.parametrize("password", [None, "", "wrong", "s3cret ", "S3CRET"])
def test_wrong_or_missing_password_is_fatal_auth_failed(password: str | None) -> None:
    room = make_room(password="s3cret")
    error = error_to(join(room, "alice", password=password), "alice", ErrorCode.AUTH_FAILED)
    assert error.code.is_fatal
    assert room.count == 0


def test_right_password_joins() -> None:
    room = make_room(password="s3cret")
    assert only_event(join(room, "alice", password="s3cret"), Welcome).name == "alice"


def test_password_is_ignored_when_the_room_has_none() -> None:
    room = make_room()
    assert only_event(join(room, "alice", password="anything"), Welcome).name == "alice"


def test_password_with_a_lone_surrogate_is_refused_not_raised() -> None:
    """A JSON `\\ud800` escape decodes to a string that `str.encode()` refuses."""
    room = make_room(password="s3cret")
    error_to(join(room, "alice", password="\ud800"), "alice", ErrorCode.AUTH_FAILED)


def test_full_room_is_fatal_server_full_until_someone_leaves() -> None:
    room = make_room("alice", "bob", max_members=2)
    error = error_to(join(room, "carol"), "carol", ErrorCode.SERVER_FULL)
    assert error.code.is_fatal
    assert room.count == 2
    room.leave("bob", LeaveReason.QUIT, NOW)
    assert only_event(join(room, "carol"), Welcome).members == 2


# --------------------------------------------------------------------------------------------
# Messages and seq.


def test_message_goes_to_every_other_member_and_ack_to_the_sender() -> None:
    room = make_room("alice", "bob", "carol")
    deliveries = say(room, "alice", "hi all", id="r1")
    assert only_event(deliveries, Message) == Message(seq=1, sender="alice", text="hi all", ts=NOW)
    assert recipients(deliveries, Message) == {"bob", "carol"}
    assert events_for(deliveries, "alice") == [Ack(id="r1", seq=1, ts=NOW, delivered=2)]


def test_message_to_an_empty_room_is_acked_with_zero_delivered() -> None:
    room = make_room("alice")
    deliveries = say(room, "alice")
    assert recipients(deliveries, Message) == set()
    assert only_event(deliveries, Ack).delivered == 0


def test_ack_without_request_id_has_none() -> None:
    room = make_room("alice")
    assert only_event(say(room, "alice"), Ack).id is None


def test_seq_starts_at_1_and_grows_by_one() -> None:
    room = make_room("alice", "bob")
    acks = [only_event(say(room, sender), Ack) for sender in ["alice", "bob"] * 3]
    assert [ack.seq for ack in acks] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", ErrorCode.EMPTY_TEXT),
        (" \n\t", ErrorCode.EMPTY_TEXT),
        ("x" * 1025, ErrorCode.TEXT_TOO_LONG),
        ("bell\x07", ErrorCode.BAD_TEXT),
        ("\u202eevil", ErrorCode.BAD_TEXT),
    ],
)
def test_refused_message_is_an_error_to_the_sender_with_its_id(text: str, code: ErrorCode) -> None:
    room = make_room("alice", "bob")
    error = error_to(say(room, "alice", text, id="r5"), "alice", code)
    assert error.id == "r5"


def test_refused_messages_and_dms_leave_no_gap_in_seq() -> None:
    room = make_room("alice", "bob")
    assert only_event(say(room, "alice"), Ack).seq == 1
    say(room, "alice", "")
    say(room, "alice", "x" * 5000)
    room.dm("alice", Dm(to="bob", text="psst"), NOW)
    assert only_event(say(room, "bob"), Ack).seq == 2


def test_max_text_comes_from_the_limits() -> None:
    room = make_room("alice", max_text=5)
    assert only_event(say(room, "alice", "12345"), Ack).seq == 1
    error = error_to(say(room, "alice", "123456"), "alice", ErrorCode.TEXT_TOO_LONG)
    assert error.message == "message too long (6 > 5 characters)"


def test_member_who_joins_later_receives_from_the_next_seq() -> None:
    room = make_room("alice")
    say(room, "alice", "before")
    join(room, "bob")
    assert only_event(say(room, "alice", "after"), Message).seq == 2
    assert "bob" in recipients(say(room, "alice", "again"), Message)


# --------------------------------------------------------------------------------------------
# Private messages.


def test_dm_goes_to_its_target_only_and_is_acked_with_one_delivered() -> None:
    room = make_room("alice", "bob", "carol")
    deliveries = room.dm("alice", Dm(to="bob", text="psst", id="d1"), NOW)
    assert events_for(deliveries, "bob") == [Private("alice", "bob", "psst", NOW)]
    assert events_for(deliveries, "carol") == []
    assert events_for(deliveries, "alice") == [Ack(id="d1", seq=None, ts=NOW, delivered=1)]


@pytest.mark.parametrize("to", ["BOB", "Bob", "ｂｏｂ", " bob "])
def test_dm_target_is_found_by_its_folded_name(to: str) -> None:
    room = make_room("alice", "bob")
    deliveries = room.dm("alice", Dm(to=to, text="psst"), NOW)
    assert events_for(deliveries, "bob") == [Private("alice", "bob", "psst", NOW)]


def test_dm_to_a_missing_member_is_no_such_member_with_the_id() -> None:
    room = make_room("alice", "bob")
    deliveries = room.dm("alice", Dm(to="zed", text="psst", id="d2"), NOW)
    error = error_to(deliveries, "alice", ErrorCode.NO_SUCH_MEMBER)
    assert error.id == "d2"
    assert "zed" in error.message


def test_dm_to_a_member_who_left_is_no_such_member() -> None:
    room = make_room("alice", "bob")
    room.leave("bob", LeaveReason.DISCONNECTED, NOW)
    deliveries = room.dm("alice", Dm(to="bob", text="psst"), NOW)
    error_to(deliveries, "alice", ErrorCode.NO_SUCH_MEMBER)


def test_dm_with_bad_text_is_refused_with_the_id() -> None:
    room = make_room("alice", "bob")
    deliveries = room.dm("alice", Dm(to="bob", text="  ", id="d3"), NOW)
    assert error_to(deliveries, "alice", ErrorCode.EMPTY_TEXT).id == "d3"


# --------------------------------------------------------------------------------------------
# Renaming.


def test_rename_is_told_to_everyone_including_the_sender() -> None:
    room = make_room("alice", "bob")
    deliveries = room.nick("alice", Nick("alicia"), NOW)
    assert only_event(deliveries, Renamed) == Renamed(old="alice", new="alicia", ts=NOW)
    assert recipients(deliveries, Renamed) == {"alice", "bob"}
    assert room.name_of("alice") == "alicia"


def test_rename_frees_the_old_name_and_takes_the_new_one() -> None:
    room = make_room("alice", "bob")
    room.nick("alice", Nick("alicia"), NOW)
    error_to(join(room, "h", "ALICIA"), "h", ErrorCode.NAME_TAKEN)
    assert only_event(join(room, "h", "Alice"), Welcome).name == "Alice"


def test_rename_to_a_case_change_of_ones_own_name_is_allowed() -> None:
    room = make_room("alice", "bob")
    deliveries = room.nick("alice", Nick("Alice"), NOW)
    assert only_event(deliveries, Renamed) == Renamed(old="alice", new="Alice", ts=NOW)
    assert room.name_of("alice") == "Alice"
    error_to(join(room, "h", "alice"), "h", ErrorCode.NAME_TAKEN)


@pytest.mark.parametrize("taken", ["bob", "BOB", "ｂｏｂ"])
def test_rename_into_a_taken_name_is_refused(taken: str) -> None:
    room = make_room("alice", "bob")
    error_to(room.nick("alice", Nick(taken), NOW), "alice", ErrorCode.NAME_TAKEN)
    assert room.name_of("alice") == "alice"
    assert room.name_of("bob") == "bob"


@pytest.mark.parametrize("name", ["", "no spaces", "server", "x" * 33])
def test_rename_to_an_invalid_name_is_bad_name(name: str) -> None:
    room = make_room("alice")
    error_to(room.nick("alice", Nick(name), NOW), "alice", ErrorCode.BAD_NAME)
    assert room.name_of("alice") == "alice"


def test_messages_after_a_rename_carry_the_new_name() -> None:
    room = make_room("alice", "bob")
    room.nick("alice", Nick("alicia"), NOW)
    assert only_event(say(room, "alice"), Message).sender == "alicia"


# --------------------------------------------------------------------------------------------
# Leaving and listing.


@pytest.mark.parametrize("reason", list(LeaveReason))
def test_leave_is_told_to_the_rest_with_the_count_after(reason: LeaveReason) -> None:
    room = make_room("alice", "bob", "carol")
    deliveries = room.leave("bob", reason, NOW)
    assert only_event(deliveries, Left) == Left(name="bob", members=2, reason=reason, ts=NOW)
    assert recipients(deliveries, Left) == {"alice", "carol"}
    assert not room.is_member("bob")
    assert room.count == 2


def test_last_member_leaving_tells_nobody() -> None:
    room = make_room("alice")
    deliveries = room.leave("alice", LeaveReason.QUIT, NOW)
    assert only_event(deliveries, Left).members == 0
    assert recipients(deliveries, Left) == set()


def test_leave_of_a_non_member_returns_nothing() -> None:
    room = make_room("alice")
    assert room.leave("stranger", LeaveReason.DISCONNECTED, NOW) == []
    assert room.count == 1


def test_leaving_twice_returns_nothing_the_second_time() -> None:
    room = make_room("alice", "bob")
    room.leave("bob", LeaveReason.QUIT, NOW)
    assert room.leave("bob", LeaveReason.QUIT, NOW) == []


def test_member_who_left_receives_no_more_messages() -> None:
    room = make_room("alice", "bob", "carol")
    room.leave("bob", LeaveReason.SLOW, NOW)
    deliveries = say(room, "alice")
    assert recipients(deliveries, Message) == {"carol"}
    assert only_event(deliveries, Ack).delivered == 1


def test_who_lists_sorted_names_and_the_count_to_the_asker_only() -> None:
    room = make_room("carol", "alice", "Bob")
    room.leave("carol", LeaveReason.QUIT, NOW)
    deliveries = room.who("alice")
    assert events_for(deliveries, "alice") == [Members(names=["alice", "Bob"], members=2)]
    assert events_for(deliveries, "Bob") == []


# --------------------------------------------------------------------------------------------
# History.


def welcome_history(room: Room) -> list[Message]:
    welcome = only_event(join(room, "newcomer"), Welcome)
    return list(welcome.history)


def test_history_keeps_the_last_messages_oldest_first() -> None:
    room = make_room("alice", "bob", history=3)
    for i in range(1, 6):
        say(room, "alice" if i % 2 else "bob", f"m{i}")
    history = welcome_history(room)
    assert [(m.seq, m.text) for m in history] == [(3, "m3"), (4, "m4"), (5, "m5")]
    assert history[0] == Message(seq=3, sender="alice", text="m3", ts=NOW)


def test_history_shorter_than_the_limit_holds_every_message() -> None:
    room = make_room("alice", history=10)
    say(room, "alice", "one")
    say(room, "alice", "two")
    assert [m.text for m in welcome_history(room)] == ["one", "two"]


def test_history_zero_keeps_nothing() -> None:
    room = make_room("alice", history=0)
    say(room, "alice", "one")
    assert welcome_history(room) == []


def test_private_and_refused_messages_are_not_in_history() -> None:
    room = make_room("alice", "bob")
    room.dm("alice", Dm(to="bob", text="secret"), NOW)
    say(room, "alice", "")
    say(room, "alice", "public")
    assert [m.text for m in welcome_history(room)] == ["public"]


def test_history_messages_keep_their_time() -> None:
    room = make_room("alice")
    earlier = NOW - timedelta(minutes=5)
    room.say("alice", Say(text="old"), earlier)
    assert welcome_history(room)[0].ts == earlier


# --------------------------------------------------------------------------------------------
# Property: whatever members do, each receives every message of its membership, in seq order.

HANDLES = ["m0", "m1", "m2", "m3"]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "say", "bad-say", "dm", "nick", "who"]),
        st.sampled_from(HANDLES),
        st.sampled_from(HANDLES),
    ),
    max_size=60,
)


@settings(deadline=None, database=None)  # examples: the hypothesis profile
@given(OPS)
def test_every_member_gets_every_message_of_its_stay_in_order(
    ops: list[tuple[str, str, str]],
) -> None:
    room = make_room(history=5)
    first_seq: dict[str, int] = {}  # for each member, the seq of the first message it must see
    seen: dict[str, list[int]] = {}  # seqs of the messages (or own acks) each member received

    def check_stay(handle: str) -> None:
        assert seen[handle] == list(range(first_seq[handle], room.seq + 1))

    for op, handle, other in ops:
        member = room.is_member(handle)
        if op == "join":
            deliveries = join(room, handle, name=f"N{handle}")
        elif op == "leave":
            if member:
                check_stay(handle)
            deliveries = room.leave(handle, LeaveReason.QUIT, NOW)
        elif not member:
            continue  # the server answers not_joined before the room is asked
        elif op == "say":
            deliveries = say(room, handle)
        elif op == "bad-say":
            deliveries = say(room, handle, "\x00")
        elif op == "dm":
            deliveries = room.dm(handle, Dm(to=f"n{other}", text="psst"), NOW)
        elif op == "nick":
            deliveries = room.nick(handle, Nick(f"N{other}"), NOW)
        else:
            deliveries = room.who(handle)

        for delivery in deliveries:
            event = delivery.event
            assert set(delivery.to) <= {handle, *room.handles()}
            if isinstance(event, Welcome):
                first_seq[handle], seen[handle] = room.seq + 1, []
            if isinstance(event, Message | Ack) and event.seq is not None:
                for target in delivery.to:
                    seen[target].append(event.seq)
            if isinstance(event, Welcome | Joined | Left | Members):
                assert event.members == room.count
            if delivery.everyone:  # the server trusts this instead of the list
                assert set(delivery.to) == set(room.handles()) - {delivery.exclude}
        assert room.count == len(set(room.handles()))
        names = [room.name_of(h) for h in room.handles()]
        assert room.sorted_names() == sorted(names, key=lambda n: fold_name(n or ""))

    for handle in room.handles():
        check_stay(handle)


LOOK_ALIKES = ["alice", "аlice", "ALICE", "al.ice", "bob", "b0b", "BOB", "carol", "caroI"]


@settings(deadline=None, database=None)  # examples: the hypothesis profile
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["join", "nick", "leave"]),
            st.sampled_from(HANDLES),
            st.sampled_from(LOOK_ALIKES),
        ),
        max_size=40,
    )
)
def test_no_two_members_ever_look_alike(ops: list[tuple[str, str, str]]) -> None:
    """Joins, renames and leaves in any order keep the look index exact: one member per look."""
    room = make_room()
    for op, handle, name in ops:
        if op == "join":
            join(room, handle, name)
        elif op == "nick" and room.is_member(handle):
            room.nick(handle, Nick(name), NOW)
        elif op == "leave":
            room.leave(handle, LeaveReason.QUIT, NOW)
        names = [room.name_of(h) or "" for h in room.handles()]
        for one, other in itertools.combinations(names, 2):
            assert not confusable_keys(one) & confusable_keys(other), (one, other)
    for handle in room.handles():
        room.leave(handle, LeaveReason.QUIT, NOW)
    for name in ("alice", "bob", "carol"):
        assert isinstance(join(room, name)[0].event, Welcome)  # every look is free again


def test_deliveries_to_everyone_say_so_and_whom_they_leave_out() -> None:
    """The server sends an `everyone` delivery without walking its list: it must be exact."""
    room = Room(RoomLimits(server_name="s", max_text=100, history=5))
    handles = ["a", "b", "c"]
    for handle in handles:
        deliveries = room.join(handle, Hello(name=f"n{handle}", version=1), NOW)
    joined = deliveries[1]
    assert joined.everyone and joined.exclude == "c" and set(joined.to) == {"a", "b"}
    message, ack = room.say("a", Say(text="hi"), NOW)
    assert message.everyone and message.exclude == "a" and set(message.to) == {"b", "c"}
    assert not ack.everyone
    (renamed,) = room.nick("b", Nick(name="bee"), NOW)
    assert renamed.everyone and renamed.exclude is None and set(renamed.to) == set(handles)
    (left,) = room.leave("c", LeaveReason.QUIT, NOW)
    assert left.everyone and left.exclude is None and set(left.to) == {"a", "b"}
    (announced,) = room.announce("notice", NOW)
    assert announced.everyone and announced.exclude is None and set(announced.to) == {"a", "b"}


# --------------------------------------------------------------------------------------------
# The message log: where `seq` and history live, so that a store can take the memory's place.


def test_a_room_numbers_and_keeps_its_messages_in_the_log_it_is_given() -> None:
    """A log that already holds messages (a store reopened, say): the room goes on from its
    `seq`, and a joiner's history is the log's."""
    log = MemoryLog(keep=2)
    for text in ("one", "two", "three"):
        log.append("earlier", text, NOW)
    room = Room(RoomLimits(server_name="testhost", max_text=1024, history=2), log)
    welcome = join(room, "alice")[0].event
    assert [(m.seq, m.text) for m in welcome.history] == [(2, "two"), (3, "three")]
    join(room, "bob")
    assert only_event(say(room, "alice", "four"), Ack).seq == 4
    assert only_event(room.announce("five", NOW), Message).seq == 5
    assert room.seq == log.seq == 5
    assert [m.text for m in log.recent()] == ["four", "five"]


def test_a_log_that_keeps_nothing_still_counts() -> None:
    log = MemoryLog(keep=0)
    assert [log.append("alice", "hi", NOW).seq for _ in range(3)] == [1, 2, 3]
    assert log.recent() == []


# --------------------------------------------------------------------------------------------
# What the log answers (the queries a durable store answers the same way).


def filled_log(count: int, keep: int = 50) -> MemoryLog:
    log = MemoryLog(keep)
    for number in range(1, count + 1):
        log.append("alice", f"m{number}", NOW)
    return log


def seqs(messages: Sequence[Message]) -> list[int]:
    return [message.seq for message in messages]


def test_memory_log_keeps_enough_to_resume_but_welcomes_with_its_own_number() -> None:
    log = filled_log(1200, keep=50)
    assert seqs(log.recent()) == list(range(1151, 1201))
    messages, complete = log.since(100, 1000)
    assert (seqs(messages), complete) == (list(range(201, 1201)), False)
    messages, complete = log.since(1190, 1000)
    assert (seqs(messages), complete) == (list(range(1191, 1201)), True)


def test_memory_log_since_what_is_no_longer_kept_is_incomplete() -> None:
    log = filled_log(1500)  # 1,000 kept: 501 to 1500
    messages, complete = log.since(400, 1000)
    assert (seqs(messages)[:1], complete) == ([501], False)
    assert log.since(500, 1000) == (log.before(None, 1000)[0], True)
    assert log.since(1500, 1000) == ([], True)
    assert log.since(1501, 1000) == ([], False)
    assert MemoryLog(0).since(0, 10) == ([], True)  # nothing was ever said


def test_memory_log_pages_backwards() -> None:
    log = filled_log(10)
    assert log.before(None, 3) == (log.recent()[-3:], True)
    assert seqs(log.before(4, 3)[0]) == [1, 2, 3]
    assert log.before(4, 3)[1] is False
    assert log.before(1, 3) == ([], False)
    assert seqs(log.before(99, 2)[0]) == [9, 10]
    assert MemoryLog(0).before(None, 5) == ([], False)


def test_memory_log_search_needs_every_whole_word() -> None:
    log = MemoryLog(50)
    for text in ("Café au lait", "café-crème", "cafés", "au revoir"):
        log.append("bob", text, NOW)

    def search(text: str, limit: int) -> list[str]:
        return [m.text for m in asyncio.run(log.search(text, limit))]

    assert search("CAFÉ", 10) == ["café-crème", "Café au lait"]
    assert search("au café", 10) == ["Café au lait"]
    assert search(" ", 10) == []
    assert len(search("au", 1)) == 1


def test_remembered_ids_are_bounded_and_expire() -> None:
    sent = SentIds(max_ids=3)
    lineage = sent.new_lineage()
    for number in range(5):
        sent.remember(lineage, request_key(f"id{number}"), 1, NOW, 0)
    assert len(sent) == 3
    assert sent.ack_of(lineage, request_key("id0"), "id0", NOW) is None
    assert sent.ack_of(lineage, request_key("id4"), "id4", NOW) == Ack(
        id="id4", seq=1, ts=NOW, delivered=0
    )
    later = NOW + WINDOW + timedelta(seconds=1)
    assert sent.ack_of(lineage, request_key("id4"), "id4", later) is None
    sent.remember(lineage, request_key("late"), 2, later, 0)
    assert len(sent) == 1  # the expired ones went


def test_an_expired_id_sent_again_is_remembered_anew_and_expires_after_the_rest() -> None:
    sent = SentIds()
    lineage = sent.new_lineage()
    sent.remember(lineage, request_key("a"), 1, NOW, 0)
    sent.remember(lineage, request_key("b"), 2, NOW + WINDOW / 2, 0)
    again = NOW + WINDOW + timedelta(seconds=1)
    sent.remember(lineage, request_key("a"), 3, again, 0)  # "a" expired: a new message
    assert len(sent) == 2  # "a" once, at its new place after "b"
    assert sent.ack_of(lineage, request_key("a"), "a", again) == Ack(
        id="a", seq=3, ts=again, delivered=0
    )
    sent.remember(lineage, request_key("c"), 4, NOW + WINDOW * 1.6, 0)
    assert sent.ack_of(lineage, request_key("b"), "b", NOW + WINDOW * 1.6) is None
    assert len(sent) == 2  # "b" went; "a" and "c" are within the window


def test_a_token_hands_its_lineage_down_also_again_and_only_its_own() -> None:
    sent = SentIds(key=b"k" * 32)
    first, second = sent.new_lineage(), sent.new_lineage()
    assert first != second and 0 not in (first, second)  # 0 is the operator's
    token = sent.token_for(first)
    assert token != sent.token_for(first)  # each welcome has a new one
    assert sent.inherit(token) == first
    # Again: the successor's welcome may have been lost, and the client shows it once more.
    assert sent.inherit(token) == first
    assert sent.inherit(sent.token_for(second)) == second
    # Another key's token (another server's), a token changed in one character, and junk.
    assert SentIds(key=b"x" * 32).inherit(token) is None
    changed = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (changed, "", "t1", token + "AAAA", "ü" * 54, "%" * 54):
        assert sent.inherit(bad) is None, bad


def test_a_member_who_left_takes_its_ids_back_with_its_token() -> None:
    room = make_room("bob")
    welcome = only_event(join(room, "alice"), Welcome)
    first = only_event(say(room, "alice", "hi", id="x1"), Ack)
    room.leave("alice", LeaveReason.DISCONNECTED, NOW)
    join(room, "alice2", "alice", token=welcome.token)
    assert events_for(say(room, "alice2", "hi", id="x1"), "bob") == []
    assert only_event(say(room, "alice2", "hi", id="x1"), Ack) == first
    assert only_event(say(room, "bob", "hi", id="x1"), Ack).seq == first.seq + 1


def test_a_message_is_split_into_words_once_however_often_it_is_searched(monkeypatch) -> None:
    """A search costs a set look-up per kept message after the first that reads it: a member
    repeating a search cannot make the room re-read a thousand messages each time."""
    import tcpchat.server.messages as messages

    log = messages.MemoryLog(50)
    for n in range(1000):
        log.append("alice", f"message number {n}", NOW)
    split = []
    original = messages.words_of
    monkeypatch.setattr(messages, "words_of", lambda text: split.append(text) or original(text))

    async def search() -> list[str]:
        return [message.text for message in await log.search("absent", 20)]

    for _ in range(60):
        assert asyncio.run(search()) == []
    assert len(split) == 1000 + 60  # each message once, and each search's own text
    log.append("bob", "absent at last", NOW)
    assert asyncio.run(search()) == ["absent at last"]
    assert len(split) == 1000 + 60 + 2


def test_an_id_of_any_length_costs_the_same_to_remember() -> None:
    """Only a digest of the id is kept (ids may be as long as a line), and the ack comes back
    with the id it was asked for."""
    room = make_room("alice", "bob")
    long_id = "i" * 16_000
    ack = only_event(say(room, "alice", "hi", id=long_id), Ack)
    assert ack == Ack(id=long_id, seq=1, ts=NOW, delivered=1)
    ((_, kept_key),) = room.sent._acks
    assert kept_key == request_key(long_id) and len(kept_key) == 16
    assert only_event(say(room, "alice", "hi", id=long_id), Ack) == ack
    assert only_event(say(room, "alice", "hi", id=long_id[:-1]), Ack).seq == 2


def test_a_say_with_an_id_digests_it_once(monkeypatch) -> None:
    """The id's digest is the key of everything kept about it: the look-up for a resend, the
    log's record and the ack remembered, so one `say` works it out once."""
    import tcpchat.server.once as once
    import tcpchat.server.room as room_module

    digested: list[str] = []
    original = once.request_key

    def counting(request_id: str) -> bytes:
        digested.append(request_id)
        return original(request_id)

    monkeypatch.setattr(once, "request_key", counting)
    monkeypatch.setattr(room_module, "request_key", counting)
    room = make_room("alice", "bob")
    first = only_event(say(room, "alice", "hi", id="x1"), Ack)
    assert digested == ["x1"]
    assert only_event(say(room, "alice", "hi", id="x1"), Ack) == first  # a resend: its ack
    assert digested == ["x1", "x1"]


def test_remembered_ids_leave_the_garbage_collector_nothing_to_track() -> None:
    """A busy room remembers up to `MAX_IDS` acks: kept as objects the collector tracks, every
    full collection would walk them all."""
    room = make_room("alice", "bob", history=0)
    gc.collect()
    tracked = len(gc.get_objects())
    for number in range(5000):
        say(room, "alice", "hi", id=f"x{number}")
    gc.collect()
    assert len(room.sent) == 5000
    assert len(gc.get_objects()) - tracked < 100
