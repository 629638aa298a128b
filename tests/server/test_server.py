"""The server end to end over real loopback sockets: every row and rule of PROTOCOL.md.

Each test starts a server in a thread (conftest's `start_server` / `chat`) and talks to it with
blocking line clients.  Every wait is a read with a deadline, never a sleep: to show that *nothing
else* reached a member, `sync` sends a ping and requires the pong to be the very next line (the
server answers in order, so anything sent to that member before would come first).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support import TIMEOUT
from support.chat import (
    SmallBufferClient,
    collect,
    expect_closed,
    expect_error,
    has_ipv6_loopback,
    hello,
    join,
    json_line,
    next_of,
    plain_sync,
    plain_until,
    say,
    sync,
)
from support.running import RunningServer
from support.wire import LineClient, kernel_sockets

from tcpchat.protocol import LeaveReason
from tcpchat.server.chat_server import LOBBY

Event = dict[str, Any]

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CLOCK = r"\[\d\d:\d\d\]"
LINE_LIMIT = 16 * 1024
MAX_TEXT = 1024
HIGH_RATE = {"rate": 1e6, "burst": 10**6, "byte_rate": 0}  # so the token bucket never paces a test


@pytest.fixture(autouse=True)
def server_logs_no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The server logs an exception it caught per connection; any such record is a bug."""
    yield
    # Autouse, so set up before the server and torn down after it: its shutdown is included.
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    errors = [
        record
        for record in records
        # asyncio's own errors too: a connection task must never end with a logged traceback.
        if record.name.startswith(("tcpchat", "asyncio")) and record.levelno >= logging.ERROR
    ]
    assert not errors, [record.getMessage() for record in errors]


@pytest.fixture
def untracked() -> Iterator[Callable[..., LineClient]]:
    """JSON members that RunningServer.stop() does not close first (to watch a shutdown)."""
    clients: list[LineClient] = []

    def connect(server: RunningServer, name: str, receive_buffer: int | None = None) -> LineClient:
        if receive_buffer is None:
            client = LineClient("127.0.0.1", server.port, TIMEOUT)
        else:
            client = SmallBufferClient(server.port, TIMEOUT, receive_buffer)
        clients.append(client)
        client.read_line()
        client.send_json(hello(name))
        client.expect("welcome")
        return client

    yield connect
    for client in clients:
        client.close()


# --- connection start ----------------------------------------------------------------------------


def test_banner_is_the_first_line_and_not_json(chat):
    client = chat.connect()
    banner = client.read_line()
    assert banner.strip()
    assert not banner.startswith("{")


def test_hello_sent_before_reading_the_banner_is_answered_after_it(chat):
    client = chat.connect()
    client.send_json(hello("early"))
    assert not client.read_line().startswith("{")
    assert client.expect("welcome")["name"] == "early"


def test_crlf_line_ends_are_accepted_in_json_mode(chat):
    client = chat.connect()
    client.send_raw(json.dumps(hello("crlf")).encode() + b"\r\n")
    client.read_line()
    assert client.expect("welcome")["name"] == "crlf"


# --- hello ---------------------------------------------------------------------------------------


def test_hello_gets_welcome_and_the_others_get_joined(chat):
    alice, first = join(chat, "alice")
    assert first["members"] == 1
    assert first["names"] == ["alice"]
    bob, welcome = join(chat, "bob")
    assert isinstance(welcome.get("token"), str) and len(welcome["token"]) >= 40
    assert welcome["token"] != first["token"]
    assert welcome == {
        "type": "welcome",
        "name": "bob",
        "members": 2,
        "names": ["alice", "bob"],
        "server": "testserver",
        "motd": None,
        "max_text": MAX_TEXT,
        "version": 1,
        "history": [],
        "seq": 0,
        "token": welcome["token"],
        "gap": False,
    }
    joined = alice.expect("joined")
    assert (joined["name"], joined["members"]) == ("bob", 2)
    assert TS.match(joined["ts"])
    sync(bob)  # the joiner gets no `joined` about itself


def test_welcome_carries_the_motd(start_server):
    server = start_server(motd="Be kind.")
    _, welcome = join(server, "alice")
    assert welcome["motd"] == "Be kind."


@pytest.mark.parametrize("name", ["x" * 32, "Zoë", "名前", "a_b-c.d", "R2D2", "٣"])
def test_valid_names_are_accepted(chat, name):
    _, welcome = join(chat, name)
    assert welcome["name"] == name


@pytest.mark.parametrize(
    "name", ["", "   ", "a b", "x" * 33, "server", "SERVER", "bob!", "tab\tname", "a\u202eb"]
)
def test_bad_name_is_refused_and_a_second_hello_works(chat, name):
    client = chat.connect()
    client.read_line()
    client.send_json(hello(name))
    expect_error(client, "bad_name")
    client.send_json(hello("second"))
    assert client.expect("welcome")["name"] == "second"


@pytest.mark.parametrize("variant", ["alice", "ALICE", "Alice", "ａｌｉｃｅ"])
def test_taken_name_in_any_case_or_width_is_refused_and_a_second_hello_works(chat, variant):
    join(chat, "alice")
    client = chat.connect()
    client.read_line()
    client.send_json(hello(variant))
    expect_error(client, "name_taken")
    client.send_json(hello("second"))
    assert client.expect("welcome")["names"] == ["alice", "second"]


def test_composed_and_decomposed_accents_are_one_name(chat):
    join(chat, "Jos\u00e9")
    client = chat.connect()
    client.read_line()
    client.send_json(hello("Jose\u0301"))
    expect_error(client, "name_taken")


def test_second_hello_after_joining_is_already_joined(chat):
    alice = chat.join("alice")
    alice.send_json(hello("alice2"))
    expect_error(alice, "already_joined")
    alice.send_json({"type": "who"})
    assert alice.expect("members")["names"] == ["alice"]


# --- say -----------------------------------------------------------------------------------------


def test_say_acks_the_sender_and_sends_message_to_every_other_member(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    carol = chat.join("carol")
    bob.send_json(say("hello all", "m1"))
    ack = next_of(bob, "ack")
    assert (ack["id"], ack["seq"], ack["delivered"]) == ("m1", 1, 2)
    assert TS.match(ack["ts"])
    for member in (alice, carol):
        message = next_of(member, "message")
        assert message == {
            "type": "message",
            "seq": 1,
            "from": "bob",
            "text": "hello all",
            "ts": ack["ts"],
        }
        sync(member)
    sync(bob)  # the sender gets the ack instead of its own message


def test_say_without_id_is_acked_with_null_id(chat):
    alice = chat.join("alice")
    alice.send_json(say("solo"))
    ack = alice.expect("ack")
    assert ack["id"] is None
    assert (ack["seq"], ack["delivered"]) == (1, 0)


def test_seq_counts_only_accepted_messages(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_json(say("one"))
    assert alice.expect("ack")["seq"] == 1
    alice.send_json(say("   "))
    expect_error(alice, "empty_text")
    alice.send_json(say("x" * (MAX_TEXT + 1)))
    expect_error(alice, "text_too_long")
    alice.send_json(say("two"))
    assert alice.expect("ack")["seq"] == 2
    assert [m["seq"] for m in collect(bob, "message", 2)[0]] == [1, 2]
    sync(bob)


def test_unknown_extra_fields_are_ignored(chat):
    alice = chat.join("alice")
    alice.send_json({"type": "say", "text": "hi", "id": "e", "colour": "red", "n": [1, 2]})
    assert alice.expect("ack")["id"] == "e"


@pytest.mark.parametrize(
    "text",
    ["x" * MAX_TEXT, "é" * MAX_TEXT, "line one\nline two", "tab\there", "emoji 🎉", "  padded  "],
)
def test_text_up_to_max_text_characters_is_delivered_intact(chat, text):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_json(say(text, "t"))
    assert alice.expect("ack")["id"] == "t"
    assert next_of(bob, "message")["text"] == text


def test_server_sends_compact_json_with_non_ascii_as_utf8(chat):
    alice = chat.join("Zoë")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_json(say("fête 🎉"))  # json.dumps escapes it as \\u...; the server must not
    alice.expect("ack")
    line = bob.read_line()
    assert json.loads(line)["text"] == "fête 🎉"
    assert "fête 🎉" in line and "Zoë" in line and "\\u" not in line
    assert '": ' not in line and '", "' not in line


def test_connections_that_have_not_joined_get_no_room_events(chat):
    alice = chat.join("alice")
    stranger = chat.connect()
    stranger.read_line()
    bob = chat.join("bob")
    bob.send_json(say("members only"))
    bob.expect("ack")
    alice.send_json({"type": "bye"})
    expect_closed(alice)
    sync(stranger)


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n"])
def test_blank_text_is_empty_text(chat, text):
    alice = chat.join("alice")
    alice.send_json(say(text, "b"))
    expect_error(alice, "empty_text", "b")


@pytest.mark.parametrize("length", [MAX_TEXT + 1, 5000])
def test_text_over_max_text_is_text_too_long(chat, length):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_json(say("x" * length, "long"))
    expect_error(alice, "text_too_long", "long")
    sync(bob)


@pytest.mark.parametrize(
    "text",
    [
        "nul\x00",
        "bell\x07",
        "a\rb",
        "\x1b[31mred",
        "del\x7f",
        "c1\x85",
        "\u202eevil",
        "\u2066iso",
        "x\u2069",
    ],
)
def test_forbidden_characters_are_bad_text_and_not_delivered(chat, text):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_json(say(text, "c"))
    expect_error(alice, "bad_text", "c")
    sync(bob)


# --- dm ------------------------------------------------------------------------------------------


def test_dm_acks_delivered_one_and_reaches_only_the_target(chat):
    alice = chat.join("alice")
    bob = chat.join("Bob")
    carol = chat.join("carol")
    collect(alice, "joined", 2)
    alice.send_json({"type": "dm", "to": "BOB", "text": "psst", "id": "d1"})
    ack = alice.expect("ack")
    assert (ack["id"], ack["delivered"]) == ("d1", 1)
    assert ack.get("seq") is None
    private = next_of(bob, "private")
    assert (private["from"], private["to"], private["text"]) == ("alice", "Bob", "psst")
    assert TS.match(private["ts"])
    sync(bob)
    sync(carol)
    alice.send_json(say("public"))
    assert alice.expect("ack")["seq"] == 1  # a dm takes no seq


def test_dm_to_an_unknown_member_is_no_such_member(chat):
    alice = chat.join("alice")
    alice.send_json({"type": "dm", "to": "nobody", "text": "hi", "id": "d2"})
    expect_error(alice, "no_such_member", "d2")


def test_dm_text_is_checked_like_say(chat):
    alice = chat.join("alice")
    chat.join("bob")
    alice.expect("joined")
    alice.send_json({"type": "dm", "to": "bob", "text": " ", "id": "d3"})
    expect_error(alice, "empty_text", "d3")
    alice.send_json({"type": "dm", "to": "bob", "text": "x" * (MAX_TEXT + 1), "id": "d4"})
    expect_error(alice, "text_too_long", "d4")


# --- nick ----------------------------------------------------------------------------------------


def test_nick_is_announced_to_everyone_including_the_sender(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    bob.send_json({"type": "nick", "name": "robert"})
    for member in (alice, bob):
        renamed = member.expect("renamed")
        assert (renamed["old"], renamed["new"]) == ("bob", "robert")
        assert TS.match(renamed["ts"])
    bob.send_json(say("new name"))
    bob.expect("ack")
    assert alice.expect("message")["from"] == "robert"
    _, welcome = join(chat, "bob")  # the old name is free again
    assert welcome["names"] == ["alice", "bob", "robert"]


def test_nick_may_change_only_the_case(chat):
    alice = chat.join("alice")
    alice.send_json({"type": "nick", "name": "Alice"})
    assert alice.expect("renamed")["new"] == "Alice"


@pytest.mark.parametrize(("name", "code"), [("BOB", "name_taken"), ("no way", "bad_name")])
def test_refused_nick_keeps_the_old_name(chat, name, code):
    alice = chat.join("alice")
    chat.join("bob")
    alice.expect("joined")
    alice.send_json({"type": "nick", "name": name})
    expect_error(alice, code)
    alice.send_json({"type": "who"})
    assert alice.expect("members")["names"] == ["alice", "bob"]


# --- who, ping, bye ------------------------------------------------------------------------------


def test_who_lists_members_sorted_with_the_count(chat):
    for name in ("carol", "alice", "Bob"):
        chat.join(name)
    dave = chat.join("dave")
    dave.send_json({"type": "who"})
    assert dave.expect("members") == {
        "type": "members",
        "names": ["alice", "Bob", "carol", "dave"],
        "members": 4,
    }


def test_ping_before_joining_gets_pong_with_the_same_id(chat):
    client = chat.connect()
    client.read_line()
    client.send_json({"type": "ping", "id": "p-1"})
    assert client.read_json() == {"type": "pong", "id": "p-1"}
    client.send_json({"type": "ping"})
    assert client.read_json() == {"type": "pong", "id": None}
    client.send_json(hello("late"))
    assert client.expect("welcome")["name"] == "late"


def test_bye_closes_the_connection_and_the_others_get_left_quit(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    bob.send_json({"type": "bye"})
    assert expect_closed(bob) == []
    left = alice.expect("left")
    assert (left["name"], left["members"], left["reason"]) == ("bob", 1, "quit")
    assert TS.match(left["ts"])


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{oops", "bad_json"),
        (b"not json at all", "bad_json"),
        (b'{"type": "say", "text": "unterminated', "bad_json"),
        (b"[]", "bad_message"),
        (b'"hello"', "bad_message"),
        (b"42", "bad_message"),
        (b"{}", "bad_message"),
        (b'{"type": 5}', "bad_message"),
        (b'{"type": null}', "bad_message"),
        (b'{"type": "say"}', "bad_message"),
        (b'{"type": "say", "text": 5}', "bad_message"),
        (b'{"type": "say", "text": ["a"]}', "bad_message"),
        (b'{"type": "dm", "text": "no target"}', "bad_message"),
        (b'{"type": "nick", "name": null}', "bad_message"),
        (b'{"type": "ping", "id": 5}', "bad_message"),
        (b'{"type": "hello", "name": "noversion"}', "bad_message"),
        (b'{"type": "dance"}', "unknown_type"),
        (b'{"type": "SAY", "text": "x"}', "unknown_type"),
    ],
)
def test_malformed_line_gets_one_error_and_the_connection_stays_open(chat, line, code):
    alice = chat.join("alice")
    alice.send_raw(line + b"\n")
    expect_error(alice, code)
    sync(alice)


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"type": "dance"}, "unknown_type"),
        ({"type": "say"}, "bad_message"),
        ({"type": "say", "text": 3}, "bad_message"),
        ({"type": "say", "text": ""}, "empty_text"),
        ({"type": "say", "text": "x" * (MAX_TEXT + 1)}, "text_too_long"),
        ({"type": "say", "text": "\x07"}, "bad_text"),
        ({"type": "dm", "to": "nobody", "text": "hi"}, "no_such_member"),
    ],
)
def test_error_carries_the_request_id(chat, event, code):
    alice = chat.join("alice")
    alice.send_json({**event, "id": "req-7"})
    expect_error(alice, code, "req-7")


def test_error_without_a_request_id_has_none(chat):
    alice = chat.join("alice")
    alice.send_json(say(""))
    assert alice.expect("error").get("id") is None


@pytest.mark.parametrize(
    "event",
    [
        say("too soon", "r"),
        {"type": "dm", "to": "x", "text": "hi", "id": "r"},
        {"type": "nick", "name": "nobody"},
        {"type": "who"},
        {"type": "bye"},
    ],
)
def test_anything_but_hello_or_ping_before_joining_is_not_joined(chat, event):
    observer = chat.join("observer")
    client = chat.connect()
    client.read_line()
    client.send_json(event)
    expect_error(client, "not_joined", event.get("id"))
    client.send_json(hello("now"))
    assert client.expect("welcome")["members"] == 2
    assert observer.expect("joined")["name"] == "now"  # nothing reached the room before


@pytest.mark.slow
def test_line_over_the_limit_is_line_too_long_and_the_connection_stays_open(chat):
    alice = chat.join("alice")
    alice.send_raw(b'{"type": "say", "text": "' + b"x" * (100 * 1024) + b'"}\n')
    expect_error(alice, "line_too_long")
    sync(alice)
    alice.send_json(say("still here"))
    assert alice.expect("ack")["seq"] == 1


def test_line_limit_counts_bytes_before_the_terminator(chat):
    alice = chat.join("alice")
    padding = LINE_LIMIT - len(json.dumps({"type": "ping", "id": ""}).encode())
    exact = json.dumps({"type": "ping", "id": "x" * padding}).encode()
    assert len(exact) == LINE_LIMIT
    alice.send_raw(exact + b"\r\n")
    assert alice.expect("pong")["id"] == "x" * padding
    alice.send_raw(exact[:-2] + b'x"}\n')  # one byte more
    expect_error(alice, "line_too_long")
    sync(alice)


def test_endless_line_gets_one_line_too_long_and_is_discarded(start_server):
    chat = start_server(byte_rate=0)  # else its megabyte is read at the member's byte rate
    alice = chat.join("alice")
    alice.send_raw(b"y" * (1024 * 1024))
    alice.send_raw(b"\n")
    expect_error(alice, "line_too_long")
    sync(alice)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b'{"type": "say", "text": "caf\xe9"}',
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
    ],
)
def test_invalid_utf8_is_bad_utf8_and_the_connection_stays_open(chat, raw):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_raw(raw + b"\n")
    expect_error(alice, "bad_utf8")
    sync(alice)
    sync(bob)  # nothing was delivered


def test_unsupported_version_is_fatal(chat):
    client = chat.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": "future", "version": 2})
    expect_error(client, "version_unsupported")
    assert expect_closed(client) == []


@pytest.mark.parametrize("password", [None, "wrong", ""])
def test_wrong_password_is_auth_failed_and_fatal(start_server, password):
    server = start_server(password="s3cret")
    client = server.connect()
    client.read_line()
    fields = {} if password is None else {"password": password}
    client.send_json(hello("alice", **fields))
    expect_error(client, "auth_failed")
    assert expect_closed(client) == []


def test_right_password_joins(start_server):
    server = start_server(password="s3cret")
    client = server.connect()
    client.read_line()
    client.send_json(hello("alice", password="s3cret"))
    assert client.expect("welcome")["members"] == 1


def test_server_full_is_fatal_and_a_place_frees_when_a_member_leaves(start_server):
    server = start_server(max_clients=1)
    alice, _ = join(server, "alice")
    bob = server.connect()
    bob.read_line()
    bob.send_json(hello("bob"))
    expect_error(bob, "server_full")
    assert expect_closed(bob) == []
    sync(alice)  # the member saw nothing of it
    alice.send_json({"type": "bye"})
    expect_closed(alice)
    _, welcome = join(server, "carol")
    assert welcome["members"] == 1


# --- member counts and history -------------------------------------------------------------------


def test_member_counts_are_the_count_after_the_change(chat):
    alice, welcome = join(chat, "alice")
    assert welcome["members"] == 1
    bob, welcome = join(chat, "bob")
    assert welcome["members"] == 2
    assert alice.expect("joined")["members"] == 2
    carol, welcome = join(chat, "carol")
    assert welcome["members"] == 3
    assert alice.expect("joined")["members"] == 3
    assert bob.expect("joined")["members"] == 3
    carol.send_json({"type": "bye"})
    assert alice.expect("left")["members"] == 2
    assert bob.expect("left")["members"] == 2
    bob.close()
    assert alice.expect("left")["members"] == 1
    alice.send_json({"type": "who"})
    assert alice.expect("members")["members"] == 1


def test_joiner_gets_the_recent_history_oldest_first(start_server):
    server = start_server(history=3)
    alice, _ = join(server, "alice")
    for n in range(1, 6):
        alice.send_json(say(f"message {n}"))
        assert alice.expect("ack")["seq"] == n
    _, welcome = join(server, "bob")
    history = welcome["history"]
    assert [(m["type"], m["seq"], m["from"], m["text"]) for m in history] == [
        ("message", 3, "alice", "message 3"),
        ("message", 4, "alice", "message 4"),
        ("message", 5, "alice", "message 5"),
    ]
    assert all(TS.match(m["ts"]) for m in history)


def test_history_zero_sends_an_empty_history(start_server):
    server = start_server(history=0)
    alice, _ = join(server, "alice")
    alice.send_json(say("forgotten"))
    alice.expect("ack")
    _, welcome = join(server, "bob")
    assert welcome["history"] == []


# --- transport -----------------------------------------------------------------------------------


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_loopback_members_chat(start_server):
    server = start_server(host="::1")
    alice, _ = join(server, "alice", host="::1")
    bob, welcome = join(server, "bob", host="::1")
    assert welcome["members"] == 2
    bob.send_json(say("over v6"))
    bob.expect("ack")
    assert next_of(alice, "message")["text"] == "over v6"


@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_without_bye_is_left_disconnected(chat, how):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    if how == "reset":  # SO_LINGER 0: close sends RST instead of FIN
        bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    bob.close()
    left = alice.expect("left")
    assert (left["name"], left["members"], left["reason"]) == ("bob", 1, "disconnected")
    sync(alice)


def test_half_closed_client_gets_its_answers_then_the_close(chat):
    alice = chat.join("alice")
    bob = chat.connect()
    bob.send_raw(json_line(hello("bob")) + json_line(say("last words", "w")))
    bob.sock.shutdown(socket.SHUT_WR)
    lines = expect_closed(bob)
    events = [json.loads(line) for line in lines[1:]]
    assert [e["type"] for e in events] == ["welcome", "ack"]
    assert events[1]["id"] == "w"
    assert [e["type"] for e in collect(alice, "left", 1)[1]] == ["joined", "message"]


# --- timeouts ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_connection_that_never_joins_is_closed_after_the_registration_timeout(start_server):
    server = start_server(registration_timeout=0.3)
    member, _ = join(server, "member")
    started = time.monotonic()
    silent = server.connect()
    refused = server.connect()
    refused.send_json(hello(""))
    assert not silent.read_line().startswith("{")
    expect_closed(silent)
    assert time.monotonic() - started >= 0.29  # not before its time
    refused.read_line()
    expect_error(refused, "bad_name")
    expect_closed(refused)
    sync(member)  # joined in time: never closed, though its own deadline has passed too


@pytest.mark.slow
def test_idle_member_is_warned_then_dropped_with_reason_timeout(start_server):
    server = start_server(idle_timeout=0.6)  # the warning comes half-way, at 0.3 s
    bob, _ = join(server, "bob")
    started = time.monotonic()
    alice, _ = join(server, "alice")  # joined later, so idle for less time than bob
    warning = next_of(bob, "private", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.25
    assert (warning["from"], warning["to"]) == ("server", "bob")
    assert "idle" in warning["text"] and "disconnected in" in warning["text"]
    left = next_of(alice, "left", timeout=TIMEOUT)
    assert (left["name"], left["members"], left["reason"]) == ("bob", 1, "timeout")
    lines = expect_closed(bob)
    assert json.loads(lines[-1])["type"] == "shutdown"
    assert "idle" in json.loads(lines[-1])["message"]


@pytest.mark.slow
def test_pings_do_not_keep_an_idle_member_in_the_room(start_server):
    server = start_server(idle_timeout=0.6)
    alice, _ = join(server, "alice")
    seen: list[str] = []
    for n in range(400):  # a keepalive every ~0.05 s until the server gives up on her
        alice.send_json({"type": "ping", "id": str(n)})
        try:
            event = alice.read_json(timeout=0.05)
        except AssertionError as nothing:
            assert "no line within the deadline" in str(nothing)
            continue
        seen.append(event["type"])
        if event["type"] == "shutdown":
            break
    assert "private" in seen and seen[-1] == "shutdown", seen


@pytest.mark.slow
def test_a_message_restarts_the_idle_clock(start_server):
    server = start_server(idle_timeout=0.6)
    alice, _ = join(server, "alice")
    next_of(alice, "private", timeout=TIMEOUT)  # warned
    alice.send_json(say("still here", "1"))
    assert alice.expect("ack")["id"] == "1"
    active = time.monotonic()
    warning = alice.expect("private", timeout=TIMEOUT)  # warned again, not dropped at once
    assert time.monotonic() - active >= 0.25
    assert "idle" in warning["text"]
    assert alice.expect("shutdown", timeout=TIMEOUT)


# --- ordering, flooding, slow members ------------------------------------------------------------


def test_concurrent_senders_keep_seq_in_order_without_gaps(start_server, capsys):
    senders_count, per_sender, receivers_count = 8, 100, 3
    total = senders_count * per_sender
    server = start_server(**HIGH_RATE)
    senders = [server.join(f"sender{n}") for n in range(senders_count)]
    receivers = [server.join(f"receiver{n}") for n in range(receivers_count)]
    start = threading.Barrier(senders_count + receivers_count, timeout=TIMEOUT)
    deadline = 6 * TIMEOUT

    def send_all(n: int) -> tuple[list[int], list[Event]]:
        client = senders[n]
        lines = b"".join(json_line(say(f"s{n} m{i}", f"{n}-{i}")) for i in range(per_sender))
        start.wait()
        client.send_raw(lines)
        seqs: list[int] = []
        acks: list[Event] = []
        ends = time.monotonic() + deadline
        while len(seqs) < total:
            event = client.read_json(max(0.01, ends - time.monotonic()))
            if event["type"] == "ack":
                acks.append(event)
            if event["type"] in ("ack", "message"):
                seqs.append(event["seq"])
        return seqs, acks

    def receive_all(n: int) -> list[Event]:
        start.wait()
        return collect(receivers[n], "message", total, deadline)[0]

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=senders_count + receivers_count) as pool:
        sent = [pool.submit(send_all, n) for n in range(senders_count)]
        received = [pool.submit(receive_all, n) for n in range(receivers_count)]
        sender_results = [future.result(timeout=deadline + TIMEOUT) for future in sent]
        receiver_results = [future.result(timeout=deadline + TIMEOUT) for future in received]
    elapsed = time.monotonic() - began

    everything = list(range(1, total + 1))
    for n, (seqs, acks) in enumerate(sender_results):
        assert seqs == everything  # its own as acks, everyone else's as messages
        assert [ack["id"] for ack in acks] == [f"{n}-{i}" for i in range(per_sender)]
        assert {ack["delivered"] for ack in acks} == {senders_count + receivers_count - 1}
    for messages in receiver_results:
        assert [m["seq"] for m in messages] == everything
        for n in range(senders_count):  # each sender's messages in the order it sent them
            texts = [m["text"] for m in messages if m["from"] == f"sender{n}"]
            assert texts == [f"s{n} m{i}" for i in range(per_sender)]
    assert server.call(lambda: server.server.lobby.seq) == total
    with capsys.disabled():
        deliveries = total * (senders_count + receivers_count)
        print(
            f"\n[concurrency] {total} messages to {senders_count + receivers_count} members in "
            f"{elapsed:.2f} s: {total / elapsed:.0f} messages/s, {deliveries / elapsed:.0f} "
            "deliveries/s"
        )


@pytest.mark.slow
def test_flooding_member_is_slowed_but_loses_nothing(chat, capsys):
    count = 300
    config = chat.config
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    began = time.monotonic()
    alice.send_raw(b"".join(json_line(say(f"flood {i}", str(i))) for i in range(count)))
    # Seconds the token bucket must take at least:
    paced = (count - config.effective_burst) / config.rate
    acks, others = collect(alice, "ack", count, timeout=paced + 2 * TIMEOUT)
    elapsed = time.monotonic() - began
    assert others == []
    assert [ack["id"] for ack in acks] == [str(i) for i in range(count)]
    assert [ack["seq"] for ack in acks] == list(range(1, count + 1))
    messages = collect(bob, "message", count)[0]
    assert [m["text"] for m in messages] == [f"flood {i}" for i in range(count)]
    assert elapsed >= 0.9 * paced, "the flood was not slowed"
    with capsys.disabled():
        print(f"\n[flood] {count} lines acked in {elapsed:.2f} s ({count / elapsed:.1f} lines/s)")


def test_member_that_stops_reading_is_dropped_as_slow_and_the_others_miss_nothing(
    start_server, capsys
):
    server = start_server(outgoing_limit=64 * 1024, **HIGH_RATE)
    sleeper = SmallBufferClient(server.port, TIMEOUT, receive_buffer=4096)
    server.clients.append(sleeper)
    sleeper.read_line()
    sleeper.send_json(hello("sleeper"))
    sleeper.expect("welcome")
    talker, _ = join(server, "talker")
    watcher, _ = join(server, "watcher")
    collect(talker, "joined", 1)

    big = "z" * MAX_TEXT
    batch = 20
    acked: list[int] = []
    watched: list[int] = []
    left: list[Event] = []
    for _ in range(500):  # at most 10,000 messages of 1 KiB; the drop comes long before
        talker.send_raw(b"".join(json_line(say(big)) for _ in range(batch)))
        acks, _ = collect(talker, "ack", batch)
        acked += [ack["seq"] for ack in acks]
        messages, others = collect(watcher, "message", batch)
        watched += [m["seq"] for m in messages]
        left += [e for e in others if e["type"] == "left"]
        if left:
            break
    assert left, "the member that stopped reading was never dropped"
    assert [(e["name"], e["reason"], e["members"]) for e in left] == [("sleeper", "slow", 2)]
    sent_before_drop = len(acked)

    talker.send_json(say("after the drop", "after"))  # the room goes on without it
    ack = next_of(talker, "ack")
    assert ack["delivered"] == 1
    watched.append(next_of(watcher, "message")["seq"])
    acked.append(ack["seq"])
    assert watched == acked == list(range(1, len(acked) + 1))
    assert server.call(lambda: server.server.lobby.count) == 2
    # What reached it before the cut is every message from the first on, none skipped.
    complete_lines = sleeper.read_eof().split(b"\n")[:-1]
    events = [json.loads(line) for line in complete_lines]
    got = [e["seq"] for e in events if e["type"] == "message"]
    assert got == list(range(1, len(got) + 1))
    with capsys.disabled():
        print(f"\n[slow] dropped after {sent_before_drop} messages of {MAX_TEXT} characters")


# --- bad input in bulk ---------------------------------------------------------------------------


def garbage_lines(rng: random.Random) -> list[bytes]:
    """Hand-made nasty lines, JSON and plain: each must be answered or ignored, never fatal to us."""
    deep = b'{"type": "say", "text": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        deep,
        b'{"type": "say", "text": "x", "n": 1' + b"0" * 5000 + b"}",
        b'{"type": "say", "text": "x", "n": 1e999999}',
        b'{"type": "say", "text": NaN}',
        b'{"type": "ping", "id": {"a": [1, 2, {"b": null}]}}',
        b'{"type": "hello", "name": ["x"], "version": "1"}',
        b'{"type": "hello", "name": "x", "version": true}',
        b'{"type": "hello", "name": "x", "version": 1.0}',
        b'{"type": "hello", "name": "x", "password": 5}',
        b'{"type": "dm", "to": 5, "text": 6}',
        b'{"type": "nick", "name": "' + b"n" * 5000 + b'"}',
        b"\x00" * 1000,
        b"\r" * 1000,
        b"{" * 16000,
        b"/quit now please",
        b"/nick",
        b"/msg",
        "\u202e\u2066名\x85".encode(),
        bytes(rng.randrange(256) for _ in range(3000)),
    ]


def test_garbage_in_any_amount_never_disturbs_the_server(start_server):
    server = start_server(**HIGH_RATE)
    rng = random.Random(20261124)
    alice, _ = join(server, "alice")
    pat = server.join_plain("pat")
    cases: list[bytes] = [rng.randbytes(64 * 1024) for _ in range(8)]
    cases += [b"{" + rng.randbytes(32 * 1024) for _ in range(4)]
    cases.append(b"\n".join(garbage_lines(rng)) + b"\n")
    cases.append(json_line(hello("mallory")) + b"\n".join(garbage_lines(rng)) + b"\n")
    cases.append(b"plainmallory\n" + b"\n".join(garbage_lines(rng)) + b"\n")
    cases.append(b"x" * (300 * 1024))  # no newline at all
    for data in cases:
        client = server.connect()
        try:
            client.send_raw(data)
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close after a fatal error: allowed
        client.read_eof()  # the server answered all of it and closed: nothing is left to process
        client.close()

    assert server.thread is not None and server.thread.is_alive()
    alice.send_json({"type": "ping", "id": "alive"})
    assert next_of(alice, "pong")["id"] == "alive"
    pat.send_line("/who")
    assert plain_until(pat, r"^\* \d+ members? online: ")[-1] == "* 2 members online: alice, pat"
    zed, welcome = join(server, "zed")
    assert welcome["names"] == ["alice", "pat", "zed"]  # no garbage member stayed behind
    zed.send_json(say("after the storm"))
    zed.expect("ack")
    alice.read_until(lambda line: json.loads(line).get("text") == "after the storm")
    plain_until(pat, rf"^{CLOCK} zed: after the storm$")


def test_lone_surrogate_text_is_refused_without_using_a_seq(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_raw(b'{"type": "say", "text": "bad \\ud800 half", "id": "s"}\n')
    alice.expect("error")
    alice.send_json(say("fine", "f"))
    assert alice.expect("ack")["seq"] == 1, "the refused message used up a seq"
    assert bob.expect("message")["seq"] == 1


def test_lone_surrogate_text_does_not_break_later_joins(chat):
    alice = chat.join("alice")
    alice.send_raw(b'{"type": "say", "text": "bad \\udc00 half"}\n')
    alice.expect("error")
    client = chat.connect()
    client.read_line()
    client.send_json(hello("bob"))
    welcome = client.expect("welcome")
    assert welcome["members"] == 2
    assert alice.expect("joined")["name"] == "bob"


def test_say_with_an_unencodable_id_is_not_half_accepted(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.expect("joined")
    alice.send_raw(b'{"type": "say", "text": "hello", "id": "\\ud800"}\n')
    reply = alice.read_json()
    if reply["type"] == "error":  # refused: then nobody may have got the message
        sync(bob)
    else:
        assert reply["type"] == "ack"
        assert bob.expect("message")["text"] == "hello"


# --- plain mode (nc, telnet) ---------------------------------------------------------------------


def test_plain_client_names_itself_and_is_greeted_with_members_and_help(chat):
    chat.join("alice")
    carol = chat.connect()
    assert not carol.read_line().startswith("{")
    carol.send_line("carol")
    lines = plain_until(carol, "/help")
    greeting = "\n".join(lines)
    assert "carol" in greeting and "alice" in greeting
    assert "2 members" in greeting
    assert not any(line.startswith("{") for line in lines)


def test_plain_client_on_telnet_line_ends(chat):
    dave = chat.connect()
    dave.read_line()
    dave.send_raw(b"dave\r\n")
    plain_until(dave, "/help")
    dave.send_raw(b"/who\r\n")
    assert dave.read_line() == "* 1 member online: dave"


def test_plain_and_json_members_see_each_other(chat):
    carol = chat.join_plain("carol")
    bob = chat.join("bob")
    assert carol.read_line() == "* bob joined (2 members online)"
    bob.send_json(say("hi"))
    bob.expect("ack")
    assert re.match(rf"^{CLOCK} bob: hi$", carol.read_line())
    carol.send_line("hello json")
    message = bob.expect("message")
    assert (message["from"], message["text"]) == ("carol", "hello json")
    plain_sync(carol, 2)  # its own line is not echoed back
    bob.send_json({"type": "bye"})
    assert carol.read_line() == "* bob left (1 member online)"


def test_plain_taken_name_is_asked_again_on_the_same_connection(chat):
    chat.join("alice")
    client = chat.connect()
    client.read_line()
    client.send_line("ALICE")
    refused = plain_until(client, "(?i)name")
    assert not any("Welcome to" in line for line in refused)
    client.send_line("bad name!")
    plain_until(client, "(?i)name")
    client.send_line("alice2")
    greeting = "\n".join(plain_until(client, "/help"))
    assert "alice2" in greeting and "2 members" in greeting


def test_plain_commands_who_nick_msg_help_quit(chat):
    alice = chat.join("alice")
    carol = chat.join_plain("carol")
    alice.expect("joined")

    carol.send_line("/who")
    assert carol.read_line() == "* 2 members online: alice, carol"

    carol.send_line("/nick caz")
    assert carol.read_line() == "* carol is now known as caz"
    renamed = alice.expect("renamed")
    assert (renamed["old"], renamed["new"]) == ("carol", "caz")

    carol.send_line("/msg alice just between us")
    private = alice.expect("private")
    assert (private["from"], private["to"], private["text"]) == ("caz", "alice", "just between us")
    plain_until(carol, "just between us")  # the sender's own copy

    carol.send_line("/help")
    carol.send_line("/who")  # its answer marks the end of the help text
    help_text = "\n".join(plain_until(carol, r"^\* 2 members online: ")[:-1])
    for command in ("/who", "/nick", "/msg", "/quit", "/help"):
        assert command in help_text

    carol.send_line("/quit")
    assert any("Goodbye" in line for line in expect_closed(carol))  # nc shows no close itself
    left = alice.expect("left")
    assert (left["name"], left["reason"], left["members"]) == ("caz", "quit", 1)


def test_plain_padding_cannot_forge_a_line_and_the_server_looks_like_itself(chat):
    """Padding to an 80-column nc's edge once started `* bob left` at column 0 of a new row."""
    carol = chat.join_plain("carol")
    mallory = chat.join_plain("mallory")
    assert carol.read_line() == "* mallory joined (2 members online)"
    mallory.send_line("hi" + " " * 61 + "* bob left (2 members online)\t\u3000\u2800 ok")
    assert re.fullmatch(
        rf"{CLOCK} mallory: hi \* bob left \(2 members online\) ok", carol.read_line()
    )
    chat.call(lambda: chat.server.announce("Back in 5 minutes."))
    assert re.fullmatch(rf"{CLOCK} \*\*\* server: Back in 5 minutes\.", carol.read_line())


def test_plain_name_that_looks_like_a_member_is_asked_again(chat):
    chat.join("alice")
    client = chat.connect()
    client.read_line()
    client.send_line("аlice")  # Cyrillic а
    assert (
        "The name 'аlice' looks like 'alice', who is here; choose another."
        in plain_until(client, "(?i)name")[0]
    )


def test_plain_member_receives_private_messages_as_lines(chat):
    carol = chat.join_plain("carol")
    alice = chat.join("alice")
    carol.read_line()  # alice joined
    alice.send_json({"type": "dm", "to": "carol", "text": "psst", "id": "p"})
    assert alice.expect("ack")["delivered"] == 1
    line = carol.read_line()
    assert re.match(rf"^{CLOCK} alice\b.*\bcarol\b.*: psst$", line), line


def test_plain_text_too_long_is_explained(chat):
    carol = chat.join_plain("carol")
    carol.send_line("x" * 1500)
    assert carol.read_line() == "! message too long (1500 > 1024 characters)"
    plain_sync(carol, 1)


def test_plain_password_is_asked_for(start_server):
    server = start_server(password="s3cret")
    carol = server.connect()
    carol.read_line()
    carol.send_line("carol")
    assert carol.read_line() == "Password:"
    carol.send_line("s3cret")
    assert "carol" in "\n".join(plain_until(carol, "/help"))

    eve = server.connect()
    eve.read_line()
    eve.send_line("eve")
    assert eve.read_line() == "Password:"
    eve.send_line("guess")
    lines = expect_closed(eve)
    assert lines and lines[0].startswith("!")
    plain_sync(carol, 1)


def test_plain_mode_asks_the_password_before_saying_anything_of_the_name(start_server):
    """A taken or invalid name gets the same `Password:` as a free one: a stranger learns
    nothing of who is here, and a wrong password is the only thing counted against it."""
    server = start_server(password="s3cret", auth_failures=2)
    alice = server.connect()
    alice.read_line()
    alice.send_json(hello("alice", password="s3cret"))
    alice.expect("welcome")
    for name in ("alice", "ALICE", "bad name!", "server", "zed"):
        stranger = server.connect()
        stranger.read_line()
        stranger.send_line(name)
        assert stranger.read_line() == "Password:", name
    for _ in range(3):  # name problems after the right password: never a wrong password
        carol = server.connect()
        carol.read_line()
        carol.send_line("alice")
        assert carol.read_line() == "Password:"
        carol.send_line("s3cret")
        assert "taken" in carol.read_line()
        assert carol.read_line() == "Enter another name:"
        carol.send_line("bad name!")
        assert carol.read_line().startswith("! A name may hold only")
        assert carol.read_line() == "Enter another name:"
        carol.send_line("carol")  # the password is not asked again
        assert "Welcome" in "\n".join(plain_until(carol, "/help"))
        carol.send_line("/quit")
        expect_closed(carol)
    eve = server.connect()
    eve.read_line()
    eve.send_line("alice")
    assert eve.read_line() == "Password:"
    eve.send_line("guess")
    assert expect_closed(eve) == ["! Wrong password."]


def test_a_hello_without_a_password_is_told_one_is_needed_and_not_counted(start_server):
    """tcpchat's client first tries without one, then asks the person: not a wrong guess."""
    server = start_server(password="s3cret", auth_failures=2)
    for _ in range(3):
        client = server.connect()
        client.read_line()
        client.send_json(hello("alice"))
        assert expect_error(client, "auth_failed")["message"] == "This server needs a password."
        expect_closed(client)
    client = server.connect()
    client.read_line()
    client.send_json(hello("alice", password="s3cret"))
    assert client.expect("welcome")["name"] == "alice"


# --- shutdown and scale --------------------------------------------------------------------------


def test_shutdown_tells_every_member_then_closes_promptly(start_server, untracked):
    server = start_server()
    alice = untracked(server, "alice")
    carol = LineClient("127.0.0.1", server.port, TIMEOUT)
    try:
        carol.read_line()
        carol.send_line("carol")
        plain_until(carol, "/help")
        alice.expect("joined")
        plain_lines = shut_down_and_read(server, carol)
    finally:
        carol.close()
    assert len(plain_lines) == 1 and plain_lines[0].startswith("* ")
    json_lines = expect_closed(alice)
    assert [json.loads(line)["type"] for line in json_lines] == ["shutdown"]
    assert isinstance(json.loads(json_lines[0])["message"], str)


def shut_down_and_read(server: RunningServer, client: LineClient) -> list[str]:
    """Stop the server, which must take no longer than its grace; return what `client` got."""
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < server.config.shutdown_grace + 1.0
    return expect_closed(client)


@pytest.mark.slow
def test_shutdown_does_not_wait_past_its_grace_for_a_member_that_stopped_reading(
    start_server, untracked
):
    server = start_server(outgoing_limit=1 << 30, shutdown_grace=0.5, **HIGH_RATE)
    untracked(server, "sleeper", receive_buffer=4096)
    talker = untracked(server, "talker")

    def backlog() -> int:
        """Bytes the server holds for its members beyond what their sockets took."""
        return server.call(
            lambda: sum(c.transport.get_write_buffer_size() for c in server.server.connections)
        )

    for _ in range(500):  # at most 10,000 messages of 1 KiB
        talker.send_raw(b"".join(json_line(say("w" * MAX_TEXT)) for _ in range(20)))
        collect(talker, "ack", 20)
        if backlog():
            break
    assert backlog(), "the member that stopped reading never had a backlog"
    lines = shut_down_and_read(server, talker)
    assert [json.loads(line)["type"] for line in lines] == ["shutdown"]


@pytest.mark.slow
def test_three_hundred_members_are_all_counted(chat):
    count = 300
    clients = []
    for n in range(count):
        client, welcome = join(chat, f"m{n:03}")
        assert welcome["members"] == n + 1
        clients.append(client)
    assert len(welcome["names"]) == count
    joined = collect(clients[0], "joined", count - 1)[0]
    assert [e["members"] for e in joined] == list(range(2, count + 1))
    clients[0].send_json({"type": "who"})
    assert next_of(clients[0], "members")["members"] == count
    assert chat.call(lambda: chat.server.lobby.count) == count


def test_plain_name_and_first_message_in_one_packet_as_piped_into_nc(chat):
    alice = chat.join("alice")
    bob = chat.connect()  # printf 'bob\nhi there\n' | nc HOST PORT
    bob.send_raw(b"bob\nhi there\n")
    plain_until(bob, "/help")
    assert alice.expect("joined")["name"] == "bob"
    message = alice.expect("message")
    assert (message["from"], message["text"]) == ("bob", "hi there")


def test_plain_name_and_password_in_one_packet_as_piped_into_nc(start_server):
    server = start_server(password="s3cret")
    carol = server.connect()  # printf 'carol\ns3cret\n/who\n' | nc HOST PORT
    carol.send_raw(b"carol\ns3cret\n/who\n")
    plain_until(carol, "/help")
    assert carol.read_line() == "* 1 member online: carol"


# --- limits that a hostile member must not get round ----------------------------------------------


@pytest.mark.parametrize("mode", ["json", "plain"])
def test_a_welcome_carries_the_newest_history_that_fits_the_send_buffer(start_server, mode):
    """A long history is cut to what the member may leave unread (`--send-buffer`): a welcome
    is written whole, read or not, so a crowd of members that never read must not each hold
    all of it in the server."""
    limit = 16 * 1024
    server = start_server(history=40, outgoing_limit=limit, rate=1e6, burst=10**6, byte_rate=0)
    mallory = server.join("mallory")
    for n in range(40):
        mallory.send_json(say(f"{n} " + "😀" * 1020, str(n)))
    for _ in range(40):
        mallory.expect("ack")
    bob = server.connect()
    bob.read_line()
    if mode == "json":
        bob.send_json(hello("bob"))
        history = bob.expect("welcome")["history"]
        assert [m["seq"] for m in history] == list(range(41 - len(history), 41))
        sizes = [
            len(json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode()) + 1
            for m in history
        ]
        assert len(history) >= 1 and sum(sizes) <= limit
    else:
        bob.send_line("bob")
        lines = plain_until(bob, "/help")
        earlier = lines[
            lines.index("* --- earlier messages ---") + 1 : lines.index("* --- now ---")
        ]
        assert earlier and earlier[-1].startswith("[") and "mallory: 39 " in earlier[-1]
        assert sum(len(line.encode()) + 1 for line in earlier) <= limit
    assert mallory.expect("joined")["name"] == "bob"


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
def test_a_crowd_that_never_reads_holds_no_more_than_its_send_buffers(start_server):
    """Members that join and never read each leave at most their welcome unread, and the
    welcome's history is bounded by the send buffer, however long `--history` is."""
    limit = 64 * 1024
    server = start_server(history=1000, outgoing_limit=limit, rate=1e6, burst=10**6, byte_rate=0)
    talker = server.join("talker")
    for n in range(1000):
        talker.send_json(say("x" * 1000, str(n)))
    for _ in range(1000):
        talker.expect("ack")
    sleepers = []
    for n in range(10):
        sleeper = SmallBufferClient(server.port, TIMEOUT, 4096)
        server.clients.append(sleeper)
        sleeper.read_line()
        sleeper.send_json(hello(f"sleeper{n}"))
        sleepers.append(sleeper)
    for _ in sleepers:
        talker.expect("joined")

    def unread() -> list[int]:
        """What each sleeper has waiting: in the server, and in the kernel for it."""
        assert server.server is not None
        in_kernel = {remote: queued for remote, _, queued in kernel_sockets(server.port)}
        return [
            c.transport.get_write_buffer_size()
            + in_kernel[c.transport.get_extra_info("peername")[1]]
            for c in server.server.connections
            if c.name and c.name.startswith("sleeper")
        ]

    waiting = server.call(unread)
    assert len(waiting) == 10 and max(waiting) <= limit + 4096, waiting


@pytest.mark.slow
def test_many_lines_in_one_packet_do_not_stretch_the_registration_timeout(start_server):
    """Thousands of empty name lines, read later by the token bucket, still end at the deadline."""
    server = start_server(registration_timeout=0.5)
    client = server.connect()
    client.read_line()
    started = time.monotonic()
    client.send_raw(b"\n" * 4000)
    client.read_eof(timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_a_closing_connection_that_never_reads_is_cut_after_a_grace(start_server, monkeypatch):
    """`bye` from a member that reads nothing: the server may not keep its socket for ever."""
    import tcpchat.server.member

    monkeypatch.setattr(tcpchat.server.member, "CLOSE_GRACE", 0.2)
    server = start_server(rate=1e6, burst=10**6, byte_rate=0, outgoing_limit=64 * 1024 * 1024)
    sleeper = SmallBufferClient(server.port, TIMEOUT, 4096)
    server.clients.append(sleeper)
    sleeper.read_line()
    sleeper.send_json(hello("sleeper"))
    talker = server.join("talker")
    # More than the kernel buffers take (a few MB on Linux), so some stays in the server's own.
    burst = 5000
    talker.send_raw(b"".join(json_line(say("x" * 1000, str(n))) for n in range(burst)))
    for _ in range(burst):
        talker.expect("ack")
    open_files = len(os.listdir("/proc/self/fd"))  # the server runs in this process
    sleeper.send_json({"type": "bye"})
    assert talker.expect("left")["reason"] == "quit"
    deadline = time.monotonic() + TIMEOUT
    while len(os.listdir("/proc/self/fd")) >= open_files:
        assert time.monotonic() < deadline, "the server kept the connection open"
        time.sleep(0.02)  # polling the process's open files with a deadline


@pytest.mark.slow
def test_a_burst_of_long_multiline_messages_does_not_make_a_reading_member_slow(start_server):
    """60 legal messages of 1,024 characters, nearly all line breaks, in one packet: a plain
    member that reads everything (each break costs it 5 bytes) is not taken for slow.  (A
    smaller slow limit than the default, so that what one read of the burst renders passes it.)"""
    server = start_server(outgoing_limit=64 * 1024)
    watcher = server.join_plain("watcher")
    observer = server.join("observer")
    sender = server.join("sender")
    assert observer.expect("joined")["name"] == "sender"
    text = "x" + "\n" * 1022 + "x"
    sender.send_raw(b"".join(json_line(say(text, str(n))) for n in range(60)))
    for _ in range(60):
        sender.expect("ack")
    for _ in range(60):
        observer.expect("message")  # after the burst: nobody was dropped in between
    watcher.read_until(lambda line: "sender joined" in line)
    seen = 0
    while seen < 60:
        seen += watcher.read_line().startswith("[")
    assert server.call(lambda: server.server.lobby.count) == 3  # nobody was dropped


@pytest.mark.slow
def test_hundreds_of_members_dropped_at_once_are_each_announced(start_server):
    """Drops run as a loop, not a recursion: 400 at once, each `left` reaches the observer."""
    server = start_server()
    observer = server.join("observer")
    doomed = [server.join(f"m{n}") for n in range(400)]
    for _ in doomed:
        observer.expect("joined")
    assert server.server is not None
    chat_server = server.server

    def drop_all() -> int:
        for connection in list(chat_server.connections):
            if chat_server.lobby.name_of(connection) != "observer":
                connection.fanout.drop_later(connection, LeaveReason.SLOW)
        chat_server.fanouts[LOBBY].run_drops()
        return chat_server.lobby.count

    assert server.call(drop_all) == 1
    names = {observer.expect("left")["name"] for _ in doomed}
    assert names == {f"m{n}" for n in range(400)}


def test_a_fatal_error_ends_with_a_clean_close_even_while_the_peer_still_sends(start_server):
    """`server_full` to a client that sent more after its hello: the server reads and drops the
    rest instead of closing on unread input, which would reset the connection (and could
    destroy the error on its way over a real network).  The client sees the error, then EOF."""
    server = start_server(max_clients=1)
    server.join("first")
    late = server.connect()
    late.read_line()
    # Far more than the server's own buffers hold, so some is still unread in the kernel.
    junk = json_line(say("x" * 1000)) * 4000
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(late.send_raw, json_line(hello("late")) + junk)
        expect_error(late, "server_full")
        late.sock.settimeout(TIMEOUT)
        data = b""
        while chunk := late.sock.recv(65536):  # ConnectionResetError here is the failure
            data += chunk
        assert data == b""
        sending.result(TIMEOUT)  # and no reset on the way in either
