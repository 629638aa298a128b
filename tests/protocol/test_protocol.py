"""The sans-I/O codec: framing, JSON and plain parsing, validation, encoding and rendering.

Pure: no sockets, no clock. As in h11's tests, every stream is also fed one byte at a time and
split at every offset, and the results must not depend on how the bytes arrived.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import re
import runpy
import subprocess
import sys
import types
import typing
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpchat.protocol import (
    CLIENT_EVENTS,
    DEFAULT_LINE_LIMIT,
    MAX_NAME_LENGTH,
    OVERSIZED_LINE,
    SERVER_EVENTS,
    Ack,
    Banner,
    Bye,
    ClientCodec,
    Dm,
    Error,
    ErrorCode,
    Event,
    Hello,
    HelpRequest,
    HistoryPage,
    HistoryRequest,
    Invalid,
    Joined,
    LeaveReason,
    Left,
    LineFramer,
    Members,
    Message,
    Mode,
    Nick,
    Ping,
    Pong,
    Private,
    ProtocolUsageError,
    Renamed,
    Results,
    Say,
    SearchRequest,
    ServerCodec,
    Shutdown,
    Welcome,
    Who,
    banner,
    confusable_keys,
    decode_json,
    decode_server_json,
    encode_json,
    fold_name,
    format_ts,
    name_problem,
    normalize_name,
    parse_plain_command,
    parse_ts,
    render_plain,
    text_problem,
)
from tcpchat.protocol.confusables import prototypes, skeleton

TS = datetime(2026, 11, 24, 9, 30, 0, 123000, tzinfo=timezone.utc)
# 09:30 on the local clock, whatever the machine's zone: plain mode shows the server's local time.
LOCAL_0930 = datetime(2026, 11, 24, 9, 30).astimezone()

# As many examples as the hypothesis profile says (conftest.py: few locally, many in CI).
PROPERTY_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------------------
# Helpers.


def wire(obj: dict[str, Any]) -> bytes:
    """One JSON line as a client would send it (non-ASCII as raw UTF-8, to split inside it)."""
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def chunked(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`data` cut at the given offsets."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """h11's `tr`: the whole stream in one read, one byte at a time, and split at every offset."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for offset in range(len(data) + 1):
        yield chunked(data, [offset])


def receive(chunks: Sequence[bytes], conn: ServerCodec | ClientCodec | None = None) -> list[Any]:
    """Feed `chunks` to a connection (a new server one by default); return all it yields."""
    conn = conn if conn is not None else ServerCodec()
    out: list[Any] = []
    for chunk in chunks:
        out.extend(list(conn.receive_data(chunk)))
    return out


def frame(chunks: Sequence[bytes], limit: int) -> list[bytes | object]:
    framer = LineFramer(limit)
    out: list[bytes | object] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def invalid(result: object, code: ErrorCode) -> Invalid:
    assert isinstance(result, Invalid), result
    assert result.code is code, result
    return result


# --------------------------------------------------------------------------------------------
# Every client message type, decoded from JSON.

CLIENT_EXAMPLES = [
    pytest.param({"type": "hello", "name": "alice", "version": 1}, Hello("alice", 1), id="hello"),
    pytest.param(
        {"type": "hello", "name": "alice", "version": 1, "password": "pw"},
        Hello("alice", 1, "pw"),
        id="hello-password",
    ),
    pytest.param({"type": "say", "text": "hi"}, Say("hi"), id="say"),
    pytest.param({"type": "say", "text": "hi", "id": "r1"}, Say("hi", "r1"), id="say-id"),
    pytest.param({"type": "say", "text": "zoë ✓ 名前"}, Say("zoë ✓ 名前"), id="say-non-ascii"),
    pytest.param({"type": "say", "text": "a\nb"}, Say("a\nb"), id="say-line-break"),
    pytest.param({"type": "say", "text": "hi", "id": None}, Say("hi"), id="say-null-id"),
    pytest.param({"type": "dm", "to": "bob", "text": "hi"}, Dm("bob", "hi"), id="dm"),
    pytest.param(
        {"type": "dm", "to": "bob", "text": "hi", "id": "r2"}, Dm("bob", "hi", "r2"), id="dm-id"
    ),
    pytest.param({"type": "nick", "name": "carol"}, Nick("carol"), id="nick"),
    pytest.param({"type": "who"}, Who(), id="who"),
    pytest.param({"type": "ping"}, Ping(), id="ping"),
    pytest.param({"type": "ping", "id": "p1"}, Ping("p1"), id="ping-id"),
    pytest.param({"type": "bye"}, Bye(), id="bye"),
    pytest.param(
        {"type": "hello", "name": "alice", "version": 1, "since": 0, "token": "t0k"},
        Hello("alice", 1, since=0, token="t0k"),
        id="hello-resume",
    ),
    pytest.param({"type": "say", "text": "waves", "me": True}, Say("waves", me=True), id="say-me"),
    pytest.param({"type": "history"}, HistoryRequest(), id="history"),
    pytest.param(
        {"type": "history", "before": 90, "limit": 10, "id": "h1"},
        HistoryRequest(90, 10, "h1"),
        id="history-before",
    ),
    pytest.param({"type": "search", "text": "lunch"}, SearchRequest("lunch"), id="search"),
    pytest.param(
        {"type": "search", "text": "lunch", "limit": 5, "id": "s1"},
        SearchRequest("lunch", 5, "s1"),
        id="search-limit",
    ),
    pytest.param(
        {"type": "say", "text": "hi", "extra": [1, {"x": None}]}, Say("hi"), id="extra-field"
    ),
    pytest.param({"text": "hi", "type": "say"}, Say("hi"), id="type-not-first"),
]


@pytest.mark.parametrize(("obj", "expected"), CLIENT_EXAMPLES)
def test_each_client_message_decodes_to_its_event(obj: dict[str, Any], expected: Event) -> None:
    assert decode_json(json.dumps(obj)) == expected


def test_client_examples_cover_every_client_type() -> None:
    covered = {param.values[0]["type"] for param in CLIENT_EXAMPLES}
    assert covered == set(CLIENT_EVENTS)


@pytest.mark.parametrize(("obj", "expected"), CLIENT_EXAMPLES)
def test_client_event_encodes_and_decodes_back_equal(obj: dict[str, Any], expected: Event) -> None:
    assert decode_json(ClientCodec.encode(expected).decode()) == expected


# --------------------------------------------------------------------------------------------
# Framing: however the bytes arrive, the same events come out.

STREAM_EVENTS = [param.values[1] for param in CLIENT_EXAMPLES]
STREAM = b"".join(wire(param.values[0]) for param in CLIENT_EXAMPLES)


def test_stream_decodes_to_every_message_in_order() -> None:
    assert receive([STREAM]) == STREAM_EVENTS


def test_several_messages_in_one_chunk_are_all_decode_json() -> None:
    two = wire({"type": "ping", "id": "a"}) + wire({"type": "ping", "id": "b"})
    assert receive([two]) == [Ping("a"), Ping("b")]


def test_split_line_is_one_message() -> None:
    for chunks in chunkings(STREAM):
        assert receive(chunks) == STREAM_EVENTS, chunks


def test_crlf_line_ends_give_the_same_messages() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    for chunks in chunkings(crlf):
        assert receive(chunks) == STREAM_EVENTS, chunks


def test_only_one_cr_before_lf_is_dropped() -> None:
    assert frame([b"a\r\r\nb\rc\n"], limit=100) == [b"a\r", b"b\rc"]


def test_incomplete_line_waits_for_its_newline() -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(b'{"type":"ping"}')) == []
    assert list(conn.receive_data(b"\n")) == [Ping()]


def test_empty_lines_are_lines() -> None:
    assert frame([b"\n\r\n\n"], limit=4) == [b"", b"", b""]


# --------------------------------------------------------------------------------------------
# Line limit.

LIMIT = 8


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"x" * 30 + b"\nok\n"], id="one-chunk"),
        pytest.param([b"x" * 30, b"\nok\n"], id="line-then-newline"),
        pytest.param([b"x" * 3] * 10 + [b"\nok\n"], id="small-chunks"),
        pytest.param([bytes([b]) for b in b"x" * 30 + b"\nok\n"], id="one-byte-at-a-time"),
        pytest.param([b"x" * 30 + b"\r\nok\r\n"], id="crlf"),
    ],
)
def test_over_long_line_is_reported_once_and_the_next_line_is_fine(
    chunks: list[bytes],
) -> None:
    assert frame(chunks, LIMIT) == [OVERSIZED_LINE, b"ok"]


def test_over_long_line_between_good_lines_leaves_them_intact() -> None:
    stream = b"one\n" + b"y" * 100 + b"\ntwo\n"
    for chunks in chunkings(stream):
        assert frame(chunks, LIMIT) == [b"one", OVERSIZED_LINE, b"two"], chunks


def test_line_of_exactly_the_limit_is_accepted() -> None:
    for ending in (b"\n", b"\r\n"):
        stream = b"x" * LIMIT + ending
        for chunks in chunkings(stream):
            assert frame(chunks, LIMIT) == [b"x" * LIMIT], chunks


def test_line_one_byte_over_the_limit_is_too_long() -> None:
    for ending in (b"\n", b"\r\n"):
        stream = b"x" * (LIMIT + 1) + ending + b"ok\n"
        for chunks in chunkings(stream):
            assert frame(chunks, LIMIT) == [OVERSIZED_LINE, b"ok"], chunks


def test_line_of_the_limit_ending_in_cr_without_lf_is_too_long() -> None:
    stream = b"x" * LIMIT + b"\rx\nok\n"
    for chunks in chunkings(stream):
        assert frame(chunks, LIMIT) == [OVERSIZED_LINE, b"ok"], chunks


def test_over_long_line_does_not_wait_for_its_newline() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"x" * (LIMIT + 1)) == [OVERSIZED_LINE]
    assert framer.pending == 0
    assert framer.feed(b"x" * 1000) == []
    assert framer.pending == 0


def test_server_answers_line_too_long_and_keeps_going() -> None:
    conn = ServerCodec(line_limit=64)
    results = list(conn.receive_data(b"{" + b"x" * 200 + b'\n{"type":"ping","id":"after"}\n'))
    error = invalid(results[0], ErrorCode.LINE_TOO_LONG)
    assert "64 bytes" in error.message
    assert results[1:] == [Ping("after")]


def test_default_limit_accepts_a_json_line_of_exactly_16_kib() -> None:
    head, tail = '{"type":"say","text":"', '"}'
    text = "x" * (DEFAULT_LINE_LIMIT - len(head) - len(tail))
    line = (head + text + tail).encode()
    assert len(line) == 16 * 1024
    assert receive([line + b"\r\n"]) == [Say(text)]
    assert invalid(receive([b"{" + line + b"\n"])[0], ErrorCode.LINE_TOO_LONG)


def test_the_framers_marker_and_the_error_code_have_names_of_their_own() -> None:
    """`OVERSIZED_LINE` is what the framer yields; `line_too_long` is what the peer is told."""
    import tcpchat.protocol

    assert repr(OVERSIZED_LINE) == "OVERSIZED_LINE"
    assert OVERSIZED_LINE is not ErrorCode.LINE_TOO_LONG
    assert not hasattr(tcpchat.protocol, "LINE_TOO_LONG")


def test_line_limit_below_one_byte_is_a_usage_error() -> None:
    with pytest.raises(ProtocolUsageError):
        LineFramer(0)


# --------------------------------------------------------------------------------------------
# UTF-8.


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"caf\xc3", id="truncated-sequence"),
        pytest.param(b"\xc0\xaf", id="overlong"),
        pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
        pytest.param(b'{"type":"say","text":"\xe9"}', id="latin1-inside-json"),
    ],
)
def test_invalid_utf8_line_is_bad_utf8_and_the_next_line_is_fine(raw: bytes) -> None:
    results = receive([b'{"type":"ping"}\n' + raw + b'\n{"type":"ping","id":"2"}\n'])
    assert results[0] == Ping()
    invalid(results[1], ErrorCode.BAD_UTF8)
    assert results[2:] == [Ping("2")]


def test_utf8_split_inside_a_character_is_one_character() -> None:
    line = wire({"type": "say", "text": "€"})
    cut = line.index("€".encode()) + 1
    assert receive([line[:cut], line[cut:]]) == [Say("€")]


# --------------------------------------------------------------------------------------------
# Bad JSON and bad messages: data, never exceptions.


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("{", id="unclosed"),
        pytest.param('{"type":', id="truncated"),
        pytest.param("{'type': 'say'}", id="single-quotes"),
        pytest.param('{"type":"ping"} x', id="trailing-garbage"),
        pytest.param('{"type":"ping"}{"type":"ping"}', id="two-objects"),
        pytest.param("", id="empty"),
        pytest.param("not json", id="words"),
        pytest.param("[" * 100_000, id="deep-array"),
        pytest.param('{"a":' * 100_000, id="deep-object"),
        pytest.param('{"type":"say","text":' + "[" * 10_000, id="deep-inside-message"),
    ],
)
def test_line_that_is_not_json_is_bad_json(line: str) -> None:
    invalid(decode_json(line), ErrorCode.BAD_JSON)


def test_deeply_nested_line_on_the_wire_is_bad_json() -> None:
    conn = ServerCodec()
    deep = b'{"a":' + b"[" * 16_000 + b"\n"
    assert len(deep) <= DEFAULT_LINE_LIMIT
    results = list(conn.receive_data(deep + b'{"type":"ping"}\n'))
    invalid(results[0], ErrorCode.BAD_JSON)
    assert results[1:] == [Ping()]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("[]", id="array"),
        pytest.param("1", id="number"),
        pytest.param('"say"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("{}", id="no-type"),
        pytest.param('{"type":1}', id="type-number"),
        pytest.param('{"type":null}', id="type-null"),
        pytest.param('{"type":["say"]}', id="type-list"),
        pytest.param('{"type":"say"}', id="say-no-text"),
        pytest.param('{"type":"say","text":5}', id="say-text-number"),
        pytest.param('{"type":"say","text":null}', id="say-text-null"),
        pytest.param('{"type":"say","text":"hi","id":5}', id="say-id-number"),
        pytest.param('{"type":"dm","text":"hi"}', id="dm-no-to"),
        pytest.param('{"type":"dm","to":["bob"],"text":"hi"}', id="dm-to-list"),
        pytest.param('{"type":"nick"}', id="nick-no-name"),
        pytest.param('{"type":"nick","name":{}}', id="nick-name-object"),
        pytest.param('{"type":"hello","version":1}', id="hello-no-name"),
        pytest.param('{"type":"hello","name":"a","version":true}', id="hello-version-bool"),
        pytest.param('{"type":"hello","name":"a","version":"1"}', id="hello-version-string"),
        pytest.param('{"type":"hello","name":"a","version":1.5}', id="hello-version-float"),
        pytest.param('{"type":"hello","name":"a","password":1}', id="hello-password-number"),
        pytest.param('{"type":"ping","id":{}}', id="ping-id-object"),
    ],
)
def test_wrong_shape_is_bad_message(line: str) -> None:
    invalid(decode_json(line), ErrorCode.BAD_MESSAGE)


def test_bad_message_echoes_the_request_id_and_names_the_missing_field() -> None:
    error = invalid(decode_json('{"type":"say","id":"r9"}'), ErrorCode.BAD_MESSAGE)
    assert error.id == "r9"
    assert "'text'" in error.message


@pytest.mark.parametrize("kind", ["shout", "help", "welcome", "message", "", "SAY"])
def test_unknown_type_is_unknown_type_with_the_id_echoed(kind: str) -> None:
    error = invalid(decode_json(json.dumps({"type": kind, "id": "r7"})), ErrorCode.UNKNOWN_TYPE)
    assert error.id == "r7"
    assert error.as_error() == Error(ErrorCode.UNKNOWN_TYPE, error.message, "r7")


def test_id_that_is_not_a_string_is_not_echoed() -> None:
    assert invalid(decode_json('{"type":"shout","id":7}'), ErrorCode.UNKNOWN_TYPE).id is None


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('{"type":"ping","id":"\\ud800"}', id="ping-id"),
        pytest.param('{"type":"shout","id":"\\udfff"}', id="unknown-type-id"),
        pytest.param('{"type":"say","id":"x\\ud800"}', id="bad-message-id"),
    ],
)
def test_answer_to_any_decoded_line_can_be_encoded(line: str) -> None:
    """JSON escapes can spell lone surrogates, which UTF-8 cannot carry back out."""
    result = decode_json(line)
    answer = Pong(result.id) if isinstance(result, Ping) else result
    if isinstance(answer, Invalid):
        answer = answer.as_error()
    assert isinstance(answer, Event)
    encode_json(answer)


# --------------------------------------------------------------------------------------------
# The first line chooses the mode.


def test_first_line_starting_with_brace_chooses_json_mode() -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(wire({"type": "hello", "name": "alice", "version": 1}))) == [
        Hello("alice", 1)
    ]
    assert conn.mode is Mode.JSON
    invalid(next(iter(conn.receive_data(b"hello everyone\n"))), ErrorCode.BAD_JSON)


def test_json_mode_lines_stay_json_after_welcome() -> None:
    conn = ServerCodec()
    list(conn.receive_data(wire({"type": "hello", "name": "alice", "version": 1})))
    conn.encode(Welcome("alice", 1, ["alice"], "host", None, 1024, 1))
    assert conn.encode(Joined("bob", 2, TS)) == encode_json(Joined("bob", 2, TS))
    invalid(next(iter(conn.receive_data(b"/who\n"))), ErrorCode.BAD_JSON)


def test_mode_is_undecided_until_a_line_is_complete() -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(b"{")) == []
    assert conn.mode is Mode.UNDECIDED


@pytest.mark.parametrize(
    ("first", "name"),
    [
        pytest.param(b"alice\n", "alice", id="name"),
        pytest.param(b"  alice \r\n", "alice", id="stripped"),
        pytest.param(b" {alice}\n", "{alice}", id="brace-not-first"),
        pytest.param(b"[1]\n", "[1]", id="json-array"),
        pytest.param("zoë\n".encode(), "zoë", id="non-ascii"),
    ],
)
def test_first_line_not_starting_with_brace_is_a_plain_hello(first: bytes, name: str) -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(first)) == [Hello(name)]
    assert conn.mode is Mode.PLAIN


def test_plain_lines_before_joining_are_names_then_commands() -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(b"server\n")) == [
        Hello("server")
    ]  # refused by the room: ask again
    assert list(conn.receive_data(b"alice\n")) == [Hello("alice")]
    welcome = Welcome("alice", 1, ["alice"], "host", None, 1024, 1)
    assert conn.encode(welcome).startswith(b"* Welcome to host, alice!")
    assert list(conn.receive_data(b"hello there\n/who\n{json?}\n")) == [
        Say("hello there"),
        Who(),
        Say("{json?}"),
    ]


def test_plain_quit_before_joining_is_bye() -> None:
    assert receive([b"/quit\n"]) == [Bye()]


def test_plain_line_after_password_prompt_is_the_password() -> None:
    conn = ServerCodec()
    assert list(conn.receive_data(b"alice\n")) == [Hello("alice")]
    conn.ask_password("alice")
    assert list(conn.receive_data(b" s3cret\n")) == [Hello("alice", password=" s3cret")]
    assert list(conn.receive_data(b"alice\n")) == [Hello("alice")]


def test_plain_password_in_the_same_read_as_the_name_is_the_password() -> None:
    # The server asks for the password while handling the name's `Hello`: the next line of the
    # same read must be parsed only after that.
    conn = ServerCodec()
    events = iter(conn.receive_data(b"alice\ns3cret\n"))
    assert next(events) == Hello("alice")
    conn.ask_password("alice")
    assert list(events) == [Hello("alice", password="s3cret")]


def test_plain_mode_events_are_rendered_as_text() -> None:
    conn = ServerCodec()
    list(conn.receive_data(b"alice\n"))
    assert conn.encode(Joined("bob", 2, TS)) == b"* bob joined (2 members online)\n"


# --------------------------------------------------------------------------------------------
# Plain-mode commands.


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/who", Who()),
        ("/WHO", Who()),
        ("/nick carol", Nick("carol")),
        ("/nick   carol  ", Nick("carol")),
        ("/msg bob hi there", Dm("bob", "hi there")),
        ("/msg bob a  b", Dm("bob", "a  b")),
        ("/quit", Bye()),
        ("/help", HelpRequest()),
        ("/me waves", Say("waves", me=True)),
        ("/ME  waves at bob ", Say("waves at bob", me=True)),
        ("hello", Say("hello")),
        ("  indented", Say("  indented")),
        ("//who", Say("/who")),
        ("// two slashes", Say("/ two slashes")),
        ("a /who in the middle", Say("a /who in the middle")),
    ],
)
def test_plain_command_parses(line: str, expected: Event) -> None:
    assert parse_plain_command(line) == expected


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/nick", "usage: /nick NAME"),
        ("/nick   ", "usage: /nick NAME"),
        ("/msg", "usage: /msg NAME TEXT"),
        ("/msg bob", "usage: /msg NAME TEXT"),
        ("/msg bob    ", "usage: /msg NAME TEXT"),
        ("/me", "usage: /me TEXT"),
        ("/me   ", "usage: /me TEXT"),
    ],
)
def test_plain_command_without_its_arguments_shows_usage(line: str, usage: str) -> None:
    assert invalid(parse_plain_command(line), ErrorCode.BAD_MESSAGE).message == usage


@pytest.mark.parametrize("line", ["/frobnicate", "/frobnicate now", "/"])
def test_unknown_plain_command_points_to_help(line: str) -> None:
    error = invalid(parse_plain_command(line), ErrorCode.UNKNOWN_TYPE)
    assert line.split()[0] in error.message
    assert "/help" in error.message


# --------------------------------------------------------------------------------------------
# Names.


@pytest.mark.parametrize(
    "name",
    ["a", "a" * 32, "alice_2", "x.y-z", "Ünïcødé", "名前", "Ελένη", "٣٤", "_", "ﬁ"],
)
def test_valid_name_has_no_problem(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 33, id="33-chars"),
        pytest.param("two words", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("a@b", id="at"),
        pytest.param("semi;colon", id="semicolon"),
        pytest.param("smile😀", id="emoji"),
        pytest.param("x\u0301", id="combining-mark"),
        pytest.param("a\u202eb", id="bidi"),
        pytest.param("a\x00", id="nul"),
        pytest.param("²", id="superscript-digit"),
        pytest.param("server", id="reserved"),
        pytest.param("SERVER", id="reserved-upper"),
        pytest.param("ｓｅｒｖｅｒ", id="reserved-fullwidth"),
    ],
)
def test_invalid_name_has_a_problem(name: str) -> None:
    problem = name_problem(name)
    assert isinstance(problem, str)
    assert problem


@pytest.mark.parametrize("variant", ["Alice", "ALICE", "ａｌｉｃｅ", "aLiCe", "ＡＬＩＣＥ"])
def test_name_variants_fold_equal(variant: str) -> None:
    assert fold_name(variant) == fold_name("alice")


def test_folding_is_full_case_folding_not_lowercasing() -> None:
    assert fold_name("Straße") == fold_name("STRASSE")


def test_different_names_fold_apart() -> None:
    assert fold_name("alice") != fold_name("alicia")


def test_name_is_stored_stripped_and_composed() -> None:
    assert normalize_name("  e\u0301mile ") == "émile"
    assert name_problem(normalize_name("e\u0301" * 32)) is None


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ѕеrvеr", id="cyrillic-dze-ie"),
        pytest.param("serѵеr", id="cyrillic-izhitsa"),
        pytest.param("ꜱerver", id="small-capital-s"),
        pytest.param("serνer", id="greek-nu"),
        pytest.param("ЅЕRVЕR", id="cyrillic-capitals"),
        pytest.param("serveг", id="cyrillic-ghe"),
        pytest.param("server.", id="trailing-dot"),
        pytest.param("_server", id="leading-underscore"),
        pytest.param("ser-ver", id="inner-hyphen"),
    ],
)
def test_a_name_that_looks_like_server_is_refused(name: str) -> None:
    assert name_problem(name) == f"The name {name!r} looks like 'server', which is reserved."


@pytest.mark.parametrize(
    ("name", "twin"),
    [
        ("аlice", "alice"),  # Cyrillic а
        ("Тom", "tom"),  # Cyrillic Т looks like Latin T, and case does not count
        ("b0b", "bob"),  # zero and capital O
        ("biII", "bill"),  # capital I and small l
        ("ALІCE", "alice"),  # Cyrillic І
        ("ꓸalice", "alice"),  # a letter that looks like '.', which is ignored
        ("alice_", "alice"),
        ("a.l-i_ce", "alice"),
    ],
)
def test_names_that_look_alike_share_a_confusable_key(name: str, twin: str) -> None:
    assert name_problem(name) is None
    assert confusable_keys(name) & confusable_keys(twin)


@pytest.mark.parametrize(
    ("name", "other"),
    [("alice", "allce"), ("alice", "alicia"), ("Ελένη", "Ελενα"), ("名前", "名"), ("bob2", "bob")],
)
def test_names_that_differ_to_the_eye_keep_apart(name: str, other: str) -> None:
    assert not confusable_keys(name) & confusable_keys(other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ѕеrvеr", "server"), ("paypal", "paypal"), ("раураl", "paypal"), ("ǉ", "lj"), ("m", "rn")],
)
def test_skeleton_follows_unicode_confusables(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_the_confusables_table_names_its_unicode_version_and_licence() -> None:
    header = (
        resources.files("tcpchat.protocol").joinpath("confusables.tsv").read_text(encoding="utf-8")
    )
    assert re.search(r"^#\s+Version: \d+\.\d+\.\d+$", header, re.MULTILINE)
    assert "UNICODE LICENSE V3" in header
    assert len(prototypes()) > 6000


def test_the_confusables_generator_keeps_unicodes_header_and_the_mappings() -> None:
    """tcpchat/protocol/generate_confusables.py on a file shaped like Unicode's confusables.txt."""
    generator = runpy.run_path(
        str(Path(__file__).parents[2] / "tcpchat/protocol/generate_confusables.py")
    )
    source = (
        "\ufeff# confusables.txt\n# Date: 2026-08-06, 01:05:35 GMT\n# © 2026 Unicode®, Inc.\n"
        "# Version: 18.0.0\n#\n"
        "0455 ;\t0073 ;\tMA\t# ( ѕ → s ) CYRILLIC SMALL LETTER DZE → LATIN SMALL LETTER S\t#\n\n"
        "006D ;\t0072 006E ;\tMA\t# ( m → rn ) LATIN SMALL LETTER M → R, N\t#\n"
    )
    table = generator["table"](source.encode())
    assert "#   Version: 18.0.0\n" in table
    assert "# UNICODE LICENSE V3\n" in table
    assert [line for line in table.splitlines() if not line.startswith("#")] == [
        "0455\t0073",
        "006D\t0072 006E",
    ]


PROTOCOL_MODULES = ("events", "rules", "framing", "jsonlines", "plain", "codec")


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_the_package_exports_every_public_name_its_modules_define(module: str) -> None:
    """Other code imports from `tcpchat.protocol`, never from the module a name lives in."""
    import tcpchat.protocol

    path = Path(tcpchat.protocol.__file__).parent / f"{module}.py"
    defined = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    public = {name for name in defined if not name.startswith("_")}
    assert public, module
    assert public <= set(tcpchat.protocol.__all__), public - set(tcpchat.protocol.__all__)


def test_every_name_the_package_exports_is_there() -> None:
    import tcpchat.protocol

    assert len(set(tcpchat.protocol.__all__)) == len(tcpchat.protocol.__all__)
    missing = [name for name in tcpchat.protocol.__all__ if not hasattr(tcpchat.protocol, name)]
    assert not missing


def test_importing_the_protocol_does_not_read_the_confusables_table() -> None:
    code = (
        "import tcpchat.protocol, tcpchat.protocol.confusables as c\n"
        "print(c.prototypes.cache_info().currsize)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "0"


# --------------------------------------------------------------------------------------------
# Text.

MAX_TEXT = 1024


@pytest.mark.parametrize("text", ["", " ", "\t\n  ", "\n"])
def test_blank_text_is_empty_text(text: str) -> None:
    problem = text_problem(text, MAX_TEXT)
    assert problem is not None
    assert problem[0] is ErrorCode.EMPTY_TEXT


def test_text_over_max_is_too_long_with_both_lengths() -> None:
    assert text_problem("x" * 1500, MAX_TEXT) == (
        ErrorCode.TEXT_TOO_LONG,
        "message too long (1500 > 1024 characters)",
    )


def test_text_length_counts_characters_not_bytes() -> None:
    assert text_problem("é" * MAX_TEXT, MAX_TEXT) is None
    assert text_problem("é" * (MAX_TEXT + 1), MAX_TEXT) is not None


FORBIDDEN = [
    *(chr(c) for c in range(0x20) if chr(c) not in "\t\n"),
    "\x7f",
    *(chr(c) for c in range(0x80, 0xA0)),
    *(chr(c) for c in range(0x202A, 0x202F)),
    *(chr(c) for c in range(0x2066, 0x206A)),
]


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_forbidden_character_is_bad_text(char: str) -> None:
    problem = text_problem(f"a{char}b", MAX_TEXT)
    assert problem is not None
    assert problem[0] is ErrorCode.BAD_TEXT
    assert f"U+{ord(char):04X}" in problem[1]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a\tb", id="tab"),
        pytest.param("line one\nline two", id="line-feed"),
        pytest.param(" ~", id="printable-ascii-edges"),
        pytest.param("\xa0x", id="U+00A0"),
        pytest.param("a\u2029b", id="U+2029"),
        pytest.param("a\u202fb", id="U+202F"),
        pytest.param("a\u2065b", id="U+2065"),
        pytest.param("a\u206ab", id="U+206A"),
        pytest.param("héllo 名前 😀", id="non-ascii"),
    ],
)
def test_allowed_text_has_no_problem(text: str) -> None:
    assert text_problem(text, MAX_TEXT) is None


def test_text_with_a_lone_surrogate_is_bad_text() -> None:
    """A JSON `\\ud800` escape decodes to a lone surrogate, which cannot be sent on as UTF-8."""
    problem = text_problem("a\ud800b", MAX_TEXT)
    assert problem is not None
    assert problem[0] is ErrorCode.BAD_TEXT


# --------------------------------------------------------------------------------------------
# Encoding server events.

HISTORY = [Message(1, "alice", "first", TS), Message(2, "bob", "second\nline", TS)]

SERVER_EXAMPLES = [
    pytest.param(
        Welcome("zoë", 3, ["alice", "bob", "zoë"], "myhost", "Be nice.", 1024, 1, HISTORY),
        id="welcome",
    ),
    pytest.param(Welcome("alice", 1, ["alice"], "myhost", None, 1024, 1), id="welcome-bare"),
    pytest.param(Message(7, "alice", "hello ✓", TS), id="message"),
    pytest.param(Private("alice", "bob", "psst", TS), id="private"),
    pytest.param(Joined("bob", 3, TS), id="joined"),
    *(
        pytest.param(Left("bob", 2, reason, TS), id=f"left-{reason.value}")
        for reason in LeaveReason
    ),
    pytest.param(Renamed("bob", "robert", TS), id="renamed"),
    pytest.param(Members(["alice", "bob"], 2), id="members"),
    pytest.param(Ack("r1", 7, TS, 2), id="ack-say"),
    pytest.param(Ack(None, None, TS, 1), id="ack-dm-no-id"),
    pytest.param(Pong("p1"), id="pong"),
    pytest.param(Pong(), id="pong-no-id"),
    pytest.param(Error(ErrorCode.NAME_TAKEN, "Taken.", "r3"), id="error"),
    pytest.param(Error(ErrorCode.SERVER_FULL, "Full."), id="error-no-id"),
    pytest.param(Shutdown("The server is shutting down."), id="shutdown"),
    pytest.param(Message(8, "alice", "waves", TS, me=True), id="message-me"),
    pytest.param(
        Welcome("bob", 2, ["alice", "bob"], "myhost", None, 1024, 1, HISTORY, 2, "s3cret", True),
        id="welcome-resumed",
    ),
    pytest.param(HistoryPage(HISTORY, True, "h1"), id="history"),
    pytest.param(HistoryPage([], False), id="history-empty"),
    pytest.param(Results(HISTORY[::-1], "s1"), id="results"),
    pytest.param(Error(ErrorCode.UNAVAILABLE, "Try again.", "r4"), id="error-unavailable"),
]


def test_me_is_on_the_wire_only_for_an_action() -> None:
    assert "me" not in json.loads(encode_json(Message(1, "alice", "hi", TS)))
    assert json.loads(encode_json(Message(1, "alice", "waves", TS, me=True)))["me"] is True
    assert "me" not in json.loads(encode_json(Say("hi")))
    assert json.loads(encode_json(Say("waves", me=True)))["me"] is True


def test_hello_sends_since_and_token_only_when_given() -> None:
    assert set(json.loads(encode_json(Hello("alice")))) == {"type", "name", "version", "password"}
    resumed = json.loads(encode_json(Hello("alice", since=0, token="t")))
    assert resumed["since"] == 0
    assert resumed["token"] == "t"


def test_welcome_carries_seq_token_and_gap() -> None:
    obj = json.loads(
        encode_json(Welcome("bob", 1, ["bob"], "h", None, 1024, 1, [], 41, "s3cret", True))
    )
    assert (obj["seq"], obj["token"], obj["gap"]) == (41, "s3cret", True)


def test_history_answer_is_typed_history_with_messages_as_sent_live() -> None:
    obj = json.loads(encode_json(HistoryPage([Message(3, "bob", "w", TS, me=True)], False, "h")))
    assert obj == {
        "type": "history",
        "messages": [
            {
                "type": "message",
                "seq": 3,
                "from": "bob",
                "text": "w",
                "ts": "2026-11-24T09:30:00.123Z",
                "me": True,
            }
        ],
        "more": False,
        "id": "h",
    }


def test_server_examples_cover_every_server_type() -> None:
    assert {type(param.values[0]) for param in SERVER_EXAMPLES} == set(SERVER_EVENTS.values())


@pytest.mark.parametrize("event", SERVER_EXAMPLES)
def test_server_event_encodes_and_decodes_back_equal(event: Event) -> None:
    assert decode_server_json(encode_json(event).decode()) == event


@pytest.mark.parametrize("event", SERVER_EXAMPLES)
def test_encoded_event_is_one_compact_line(event: Event) -> None:
    data = encode_json(event)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    obj = json.loads(data)
    assert obj["type"] == event.TYPE
    assert data == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def test_encoded_event_has_exact_wire_form() -> None:
    assert encode_json(Joined("bob", 3, TS)) == (
        b'{"type":"joined","name":"bob","members":3,"ts":"2026-11-24T09:30:00.123Z"}\n'
    )


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    data = encode_json(Message(1, "zoë", "héllo ✓", TS))
    assert "héllo ✓".encode() in data
    assert b"\\u" not in data


def test_sender_is_sent_as_from() -> None:
    obj = json.loads(encode_json(Private("alice", "bob", "psst", TS)))
    assert obj["from"] == "alice"
    assert "sender" not in obj


def test_error_without_id_omits_the_id_key() -> None:
    assert json.loads(encode_json(Error(ErrorCode.BAD_JSON, "Bad."))) == {
        "type": "error",
        "code": "bad_json",
        "message": "Bad.",
    }
    assert json.loads(encode_json(Error(ErrorCode.BAD_JSON, "Bad.", "r1")))["id"] == "r1"


def test_ack_without_id_sends_null() -> None:
    obj = json.loads(encode_json(Ack(None, None, TS, 1)))
    assert obj["id"] is None
    assert obj["seq"] is None


def test_help_request_has_no_json_form() -> None:
    with pytest.raises(ProtocolUsageError):
        encode_json(HelpRequest())


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('{"type":"joined","name":"bob","members":3,"ts":"yesterday"}', id="bad-ts"),
        pytest.param('{"type":"joined","name":"bob","members":3,"ts":5}', id="ts-number"),
        pytest.param('{"type":"left","name":"b","members":1,"reason":"bored","ts":"x"}', id="rs"),
        pytest.param(
            '{"type":"left","name":"b","members":1,"reason":[],"ts":"2026-11-24T09:30:00Z"}',
            id="reason-list",
        ),
        pytest.param('{"type":"error","code":"oops","message":"m"}', id="unknown-code"),
        pytest.param('{"type":"members","names":["a",1],"members":2}', id="names-not-strings"),
        pytest.param(
            '{"type":"welcome","name":"a","members":1,"names":["a"],"server":"s","motd":null,'
            '"max_text":1024,"version":1,"history":[{"seq":1}]}',
            id="history-item-incomplete",
        ),
        pytest.param(
            '{"type":"welcome","name":"a","members":1,"names":["a"],"server":"s","motd":null,'
            '"max_text":1024,"version":1,"history":[5]}',
            id="history-item-number",
        ),
    ],
)
def test_malformed_server_line_is_bad_message(line: str) -> None:
    invalid(decode_server_json(line), ErrorCode.BAD_MESSAGE)


def test_client_connection_reads_the_banner_then_events() -> None:
    data = banner("myhost", 3) + encode_json(Joined("bob", 4, TS))
    for chunks in chunkings(data):
        conn = ClientCodec()
        assert receive(chunks, conn) == [
            Banner("Welcome to tcpchat on myhost! 3 members online. Enter your name:"),
            Joined("bob", 4, TS),
        ]


def test_client_connection_without_banner_decodes_the_first_line() -> None:
    assert ClientCodec().receive_data(encode_json(Pong("x"))) == [Pong("x")]


# --------------------------------------------------------------------------------------------
# Timestamps.


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (TS, "2026-11-24T09:30:00.123Z"),
        (datetime(2026, 11, 24, 9, 30, 0, 123999, tzinfo=timezone.utc), "2026-11-24T09:30:00.123Z"),
        (datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc), "2026-11-24T09:30:00.000Z"),
        (
            datetime(2026, 11, 24, 11, 30, 0, 123000, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-24T09:30:00.123Z",
        ),
    ],
)
def test_timestamp_is_rfc3339_utc_with_milliseconds(ts: datetime, text: str) -> None:
    assert format_ts(ts) == text


def test_timestamp_parses_back_to_the_same_instant() -> None:
    assert parse_ts("2026-11-24T09:30:00.123Z") == TS
    assert parse_ts("2026-11-24T10:30:00.123+01:00") == TS


# --------------------------------------------------------------------------------------------
# Plain rendering.


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (Joined("bob", 3, TS), "* bob joined (3 members online)\n"),
        (Joined("bob", 1, TS), "* bob joined (1 member online)\n"),
        (Left("bob", 2, LeaveReason.QUIT, TS), "* bob left (2 members online)\n"),
        (Left("bob", 1, LeaveReason.QUIT, TS), "* bob left (1 member online)\n"),
        (Left("bob", 0, LeaveReason.QUIT, TS), "* bob left (0 members online)\n"),
        (Message(1, "alice", "hello", LOCAL_0930), "[09:30] alice: hello\n"),
        (Message(1, "alice", "one\ntwo", LOCAL_0930), "[09:30] alice: one\n    two\n"),
        (
            Error(ErrorCode.TEXT_TOO_LONG, "message too long (1500 > 1024 characters)"),
            "! message too long (1500 > 1024 characters)\n",
        ),
        (Renamed("bob", "robert", TS), "* bob is now known as robert\n"),
        (Members(["alice", "bob"], 2), "* 2 members online: alice, bob\n"),
        (Shutdown("The server is shutting down."), "* The server is shutting down.\n"),
        (Message(1, "alice", "waves", LOCAL_0930, me=True), "[09:30] * alice waves\n"),
        (Message(1, "alice", "a\nb", LOCAL_0930, me=True), "[09:30] * alice a\n    b\n"),
        (Left("bob", 2, LeaveReason.REPLACED, TS), "* bob reconnected (2 members online)\n"),
        (
            HistoryPage([Message(1, "alice", "hi", LOCAL_0930)], True),
            "* --- earlier messages ---\n[09:30] alice: hi\n* --- end ---\n",
        ),
        (HistoryPage([], False), "* --- no earlier messages ---\n"),
        (
            Results([Message(2, "bob", "lunch?", LOCAL_0930)]),
            "* --- search results, newest first ---\n[09:30] bob: lunch?\n* --- end ---\n",
        ),
        (Results([]), "* --- nothing found ---\n"),
    ],
)
def test_plain_rendering(event: Any, text: str) -> None:
    assert render_plain(event) == text.encode()


def test_private_message_rendering_names_both_ends() -> None:
    line = render_plain(Private("alice", "bob", "psst", LOCAL_0930)).decode()
    assert line.startswith("[09:30] alice")
    assert "bob" in line
    assert "private" in line
    assert line.endswith(": psst\n")


def test_the_server_has_a_plain_look_no_member_name_can_have() -> None:
    announced = render_plain(Message(1, "server", "Back in 5 minutes.", LOCAL_0930)).decode()
    assert announced == "[09:30] *** server: Back in 5 minutes.\n"
    warned = render_plain(Private("server", "alice", "Idle.", LOCAL_0930)).decode()
    assert warned == "[09:30] *** server → alice (private): Idle.\n"


@PROPERTY_SETTINGS
@given(st.text(alphabet="*aBz9_-. ", min_size=1, max_size=MAX_NAME_LENGTH))
def test_no_member_name_renders_like_the_server(name: str) -> None:
    if name_problem(name) is None:
        line = render_plain(Message(1, name, "hi", LOCAL_0930)).decode()
        assert not line.startswith("[09:30] *")


# Characters that show nothing, as a terminal draws them: what padding is made of.
BLANKS = "\t \u00a0\u1680\u2003\u205f\u3000\u2800\u3164\u115f\uffa0\u2028"
# Characters that take no column: marks, zero-width spaces and joiners, variation selectors, tags.
INVISIBLES = "\u0301\u0489\u200b\u200d\u2060\ufeff\ufe0f\u00ad\U000e0020\U000e0100"
FORGED = "* bob left (2 members online)"


def cell_width(char: str) -> int:
    """Columns a terminal gives `char`: none for marks and format characters, two for wide ones."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf") or char in INVISIBLES:
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def terminal_rows(text: str, width: int) -> list[list[str]]:
    """The rows a terminal `width` columns wide shows for `text`, as cells (what each holds, ""
    for none), wrapped as xterm wraps: a character that does not fit starts the next row."""
    rows: list[list[str]] = [[]]
    for char in text:
        row = rows[-1]
        if char == "\n":
            rows.append([])
        elif char == "\t":  # to the next tab stop, never past the last column
            row.extend(" " * (min((len(row) // 8 + 1) * 8, width - 1) - len(row)))
        elif (columns := cell_width(char)) == 0:
            if row:
                row[-1] += char
        else:
            if len(row) + columns > width:
                rows.append(row := [])
            row.extend([char] + [""] * (columns - 1))
    return rows


def is_blank_cell(cell: str) -> bool:
    """A cell that shows nothing; "" is the second cell of a wide character, which shows it."""
    return cell != "" and all(char in BLANKS or cell_width(char) == 0 for char in cell)


def rows_pushed_to_column_0(text: str, width: int) -> list[str]:
    """Rows after the first that start with something at column 0 although the row above them
    ends in more blank cells than a wrapped word or a wide character leaves (two)."""
    rows = terminal_rows(text, width)
    pushed = []
    for above, row in itertools.pairwise(rows):
        trailing = (
            width
            - len(above)
            + next(
                (n for n, cell in enumerate(reversed(above)) if not is_blank_cell(cell)), len(above)
            )
        )
        if row and not is_blank_cell(row[0]) and trailing > 2:
            pushed.append("".join(row))
    return pushed


def test_the_terminal_model_sees_the_padding_attack() -> None:
    """The padded line of the report, as it was rendered before: the model must catch it."""
    text = f"[09:30] mallory: hi{' ' * 61}{FORGED}"
    assert rows_pushed_to_column_0(text, 80) == [FORGED]
    assert rows_pushed_to_column_0(text.replace(" " * 61, " "), 80) == []


def test_padding_cannot_push_a_forged_line_to_column_0() -> None:
    """Every kind of blank, alone or with invisible characters among it, in every amount."""
    shown = set()
    for blank, invisible, pad in itertools.product(BLANKS, ["", *INVISIBLES], (1, 2, 61, 300)):
        text = "hi" + (blank + invisible) * pad + FORGED + "\n" + blank * pad + FORGED
        shown.add(render_plain(Message(1, "mallory", text, LOCAL_0930)).decode())
        shown.add(render_plain(Private("mallory", "alice", text, LOCAL_0930)).decode())
    for rendered in shown:
        for width in range(20, 301):
            assert rows_pushed_to_column_0(rendered, width) == [], (rendered, width)


@pytest.mark.parametrize("private", ["\ue000", "\uf8ff", "\U000f0000", "\U0010fffd"])
def test_private_use_characters_show_as_a_replacement_in_plain_mode(private: str) -> None:
    """A terminal's font may draw them blank, so a run of them could pad as blanks do."""
    text = "hi" + private * 78 + FORGED
    rendered = render_plain(Message(1, "mallory", text, LOCAL_0930)).decode()
    assert private not in rendered
    assert rendered == "[09:30] mallory: hi" + "\ufffd" * 78 + FORGED + "\n"


@PROPERTY_SETTINGS
@given(
    st.text(alphabet="ab*[ \n漢\u0301" + BLANKS + INVISIBLES, min_size=1, max_size=400),
    st.sampled_from(["al", "mallory", "x" * 32]),
    st.integers(min_value=20, max_value=300),
)
def test_no_message_row_is_pushed_to_column_0_at_any_width(
    text: str, sender: str, width: int
) -> None:
    for event in (
        Message(1, sender, text, LOCAL_0930),
        Private(sender, "alice", text, LOCAL_0930),
    ):
        assert rows_pushed_to_column_0(render_plain(event).decode(), width) == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("two  spaces", "two spaces"),
        ("tab\there", "tab here"),
        ("wide\u3000\u3000space", "wide space"),
        ("  leading and trailing  ", "leading and trailing "),
        ("a \u200b \u200b b", "a b"),
        ("emoji ❤\ufe0f and 👩\u200d💻 stay", "emoji ❤\ufe0f and 👩\u200d💻 stay"),
        ("code:\n    indented\n\tby a tab", "code:\n        indented\n        by a tab"),
        ("deep:\n" + " " * 40 + "x", "deep:\n            x"),
    ],
)
def test_plain_mode_shows_a_run_of_blanks_as_one_space(text: str, shown: str) -> None:
    message = Message(1, "alice", text, LOCAL_0930)
    assert render_plain(message).decode() == f"[09:30] alice: {shown}\n"
    assert json.loads(encode_json(message))["text"] == text  # JSON mode keeps every character


@pytest.mark.parametrize("reason", list(LeaveReason))
def test_every_leave_reason_renders_one_line(reason: LeaveReason) -> None:
    line = render_plain(Left("bob", 2, reason, TS)).decode()
    assert line.startswith("* bob ")
    assert line.endswith(" (2 members online)\n")
    assert line.count("\n") == 1


@pytest.mark.parametrize("event", [Ack("r1", 1, TS, 2), Pong("p")])
def test_acks_and_pongs_render_nothing(event: Any) -> None:
    assert render_plain(event) == b""


def test_welcome_rendering_lists_members_history_and_help() -> None:
    welcome = Welcome("zoë", 2, ["alice", "zoë"], "myhost", "Be nice.", 1024, 1, HISTORY)
    text = render_plain(welcome).decode()
    assert text.startswith("* Welcome to myhost, zoë! 2 members online: alice, zoë.\n")
    assert "* Be nice.\n" in text
    assert text.index("first") < text.index("second")
    assert text.endswith("* Type /help for commands, /quit to leave.\n")
    assert "/help" not in render_plain(welcome, hints=False).decode()


def test_banner_is_one_line_for_people() -> None:
    line = banner("myhost", 1)
    assert line == b"Welcome to tcpchat on myhost! 1 member online. Enter your name:\n"
    assert not line.startswith(b"{")


# --------------------------------------------------------------------------------------------
# Properties.

CLIENT_RESULT_TYPES = (Invalid, HelpRequest, *CLIENT_EVENTS.values())

# Bytes with a fair share of the pieces that matter: braces, quotes, newlines, bad UTF-8.
FRAGMENTS = st.sampled_from(
    [
        *b'{ } [ "type" : , "say" "text" "id" "hi" 1 true null / \\ud800 \\u00e9'.split(),
        *(b"\n", b"\r", b"\r\n", b"\xff", b"\xc3", b"\xe2\x82", b"/msg ", b" "),
    ]
)
STREAMS = st.lists(st.one_of(st.binary(max_size=20), FRAGMENTS), max_size=40).map(b"".join)


@st.composite
def stream_and_cuts(draw: st.DrawFn, streams: st.SearchStrategy[bytes] = STREAMS) -> tuple:
    data = draw(streams)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, cuts


@PROPERTY_SETTINGS
@given(stream_and_cuts(), st.integers(1, 40))
def test_any_bytes_in_any_chunks_give_only_events_or_invalid(
    data_cuts: tuple[bytes, list[int]], limit: int
) -> None:
    data, cuts = data_cuts
    chunks = chunked(data, cuts)
    results = receive(chunks, ServerCodec(line_limit=limit))
    assert all(isinstance(result, CLIENT_RESULT_TYPES) for result in results)
    assert results == receive([data], ServerCodec(line_limit=limit))


def expected_lines(data: bytes, limit: int) -> list[bytes | object]:
    """What a framer must yield for `data`: a simple model of PROTOCOL.md's framing rules."""
    *complete, tail = data.split(b"\n")
    out: list[bytes | object] = []
    for line in complete:
        line = line.removesuffix(b"\r")
        out.append(OVERSIZED_LINE if len(line) > limit else line)
    if len(tail.removesuffix(b"\r")) > limit:
        out.append(OVERSIZED_LINE)  # reported as soon as it is certain, not at its newline
    return out


@PROPERTY_SETTINGS
@given(stream_and_cuts(st.binary(max_size=200)), st.integers(1, 16))
def test_framer_yields_the_same_lines_however_the_bytes_arrive(
    data_cuts: tuple[bytes, list[int]], limit: int
) -> None:
    data, cuts = data_cuts
    lines = frame(chunked(data, cuts), limit)
    assert lines == frame([data], limit)
    assert lines == expected_lines(data, limit)


@PROPERTY_SETTINGS
@given(
    st.lists(st.one_of(st.binary(max_size=50), st.sampled_from([b"\n", b"\r", b"\r\n"]))),
    st.integers(1, 16),
)
def test_framer_never_buffers_more_than_limit_plus_one(chunks: list[bytes], limit: int) -> None:
    framer = LineFramer(limit)
    for chunk in chunks:
        framer.feed(chunk)
        assert framer.pending <= limit + 1


@PROPERTY_SETTINGS
@given(st.text(max_size=MAX_TEXT))
def test_valid_text_round_trips_through_json(text: str) -> None:
    if text_problem(text, MAX_TEXT) is not None:
        return
    message = Message(1, "alice", text, TS)
    assert decode_server_json(encode_json(message).decode()) == message
    assert decode_json(encode_json(Say(text, "r")).decode()) == Say(text, "r")


def test_hello_without_version_is_bad_message() -> None:
    result = decode_json('{"type": "hello", "name": "alice"}')
    assert isinstance(result, Invalid)
    assert result.code is ErrorCode.BAD_MESSAGE


def test_only_whitespace_controls_is_bad_text_not_empty_text() -> None:
    assert text_problem("\x1c", 1024) is not None
    assert text_problem("\x1c", 1024)[0] is ErrorCode.BAD_TEXT  # type: ignore[index]


def test_a_bom_before_the_first_line_does_not_hide_json_mode() -> None:
    conn = ServerCodec()
    events = list(
        conn.receive_data(b'\xef\xbb\xbf{"type": "hello", "name": "alice", "version": 1}\n')
    )
    assert events == [Hello("alice", 1)]
    assert conn.mode is Mode.JSON


@pytest.mark.parametrize("filler", ["\u3164", "\u115f", "\u1160", "\uffa0"])
def test_invisible_letters_do_not_make_a_name(filler: str) -> None:
    assert name_problem(filler) is not None
    assert name_problem(f"a{filler}b") is not None


def test_a_timestamp_no_time_zone_can_show_is_a_bad_message() -> None:
    line = '{"type":"joined","name":"bob","members":2,"ts":"9999-12-31T23:59:59Z"}'
    result = decode_server_json(line)
    assert isinstance(result, Invalid)
    assert result.code is ErrorCode.BAD_MESSAGE


# Every event type, with any field values the wire can carry, round-trips through JSON.
WIRE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # no lone surrogates
WIRE_TIMES = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(timezone.utc)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


WIRE_VALUES: dict[object, st.SearchStrategy[Any]] = {
    str: WIRE_TEXT,
    datetime: WIRE_TIMES,
    int: st.integers(0, 2**53),
}


def _event_strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    """Instances of `cls`: strings any text, times whole milliseconds in UTC (as on the wire)."""
    hints = typing.get_type_hints(cls)
    fields = {field.name: _strategy_for(hints[field.name]) for field in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


def _strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    if hint in WIRE_VALUES:
        return WIRE_VALUES[hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_strategy_for(arg) for arg in typing.get_args(hint)])
    if origin is list:
        (item,) = typing.get_args(hint)
        return st.lists(_strategy_for(item), max_size=4)
    if hint is type(None):
        return st.none()
    if dataclasses.is_dataclass(hint):
        return _event_strategy(hint)  # a welcome's history of messages
    return st.from_type(hint)  # the enums


# By side: `history` is a type of both (the request and its answer).
ALL_EVENTS = {
    **{f"client-{kind}": cls for kind, cls in CLIENT_EVENTS.items()},
    **{f"server-{kind}": cls for kind, cls in SERVER_EVENTS.items()},
}


@PROPERTY_SETTINGS
@given(st.data())
@pytest.mark.parametrize("kind", sorted(ALL_EVENTS))
def test_every_event_round_trips_through_json(kind: str, data: st.DataObject) -> None:
    cls = ALL_EVENTS[kind]
    event = data.draw(_event_strategy(cls))
    line = encode_json(event).decode()
    assert line.endswith("\n") and "\n" not in line[:-1]  # one line, whatever the text holds
    decode = decode_json if kind.startswith("client-") else decode_server_json
    assert decode(line) == event


SERVER_RESULT_TYPES = (Invalid, Banner, *SERVER_EVENTS.values())


@PROPERTY_SETTINGS
@given(stream_and_cuts(), st.integers(1, 40))
def test_a_client_given_any_bytes_gets_only_events_or_invalid(
    data_cuts: tuple[bytes, list[int]], limit: int
) -> None:
    data, cuts = data_cuts
    results = receive(chunked(data, cuts), ClientCodec(line_limit=limit))
    assert all(isinstance(result, SERVER_RESULT_TYPES) for result in results)
    assert results == receive([data], ClientCodec(line_limit=limit))


def test_shutdown_carries_a_reason_only_when_a_member_was_removed() -> None:
    assert encode_json(Shutdown("The server is shutting down.")) == (
        b'{"type":"shutdown","message":"The server is shutting down."}\n'
    )
    kicked = Shutdown("You were removed.", LeaveReason.KICKED)
    assert (
        encode_json(kicked)
        == b'{"type":"shutdown","message":"You were removed.","reason":"kicked"}\n'
    )
    assert decode_server_json('{"type":"shutdown","message":"bye"}') == Shutdown("bye")


def test_the_text_check_forbids_exactly_the_forbidden_characters() -> None:
    """Every code point: the message check (a regular expression) and the character rule agree."""
    from tcpchat.protocol import is_forbidden_char

    for code in range(0x110000):
        char = chr(code)
        problem = text_problem(char + "x", 2)
        refused = problem is not None and problem[0] is ErrorCode.BAD_TEXT
        assert refused == is_forbidden_char(char), hex(code)
