"""Who may connect, and how much: per-address limits, password lockouts, bans, the flood rate.

`AddressGuard` is tested alone with a clock the test moves; then each limit against a real server
on 127.0.0.1: a test that trips it, and a test that a normal person never meets it at the
defaults.  (conftest turns the per-address limits off for the other tests, since every test
client comes from 127.0.0.1; here they are set explicitly.)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from support import TIMEOUT
from support.chat import expect_closed, expect_error, hello, join, json_line, next_of, say, sync
from support.running import RunningServer
from support.wire import LineClient

from tcpchat.server.config import ServerConfig
from tcpchat.server.guard import PRUNE_AT, AddressGuard, GuardLimits, address_key

DEFAULTS = ServerConfig()
DEFAULT_LIMITS = {
    "max_per_address": DEFAULTS.max_per_address,
    "connect_rate": DEFAULTS.connect_rate,
    "auth_failures": DEFAULTS.auth_failures,
    "auth_lockout": DEFAULTS.auth_lockout,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(**limits: Any) -> tuple[AddressGuard, Clock]:
    clock = Clock()
    return AddressGuard(GuardLimits(**limits), clock), clock


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4 through a dual-stack socket
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same host's /64
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_limits_count_an_ipv4_address_or_an_ipv6_64(host: str, key: str) -> None:
    assert address_key(host) == key


# --- the guard alone ----------------------------------------------------------------------------


def test_connections_per_address_are_capped_and_freed_on_close() -> None:
    g, _ = guard(max_per_address=3, connect_rate=None)
    assert [g.admit("192.0.2.1") for _ in range(3)] == [None, None, None]
    refusal = g.admit("192.0.2.1")
    assert refusal == "Too many connections from your address (at most 3); close one first."
    assert g.admit("192.0.2.2") is None  # another address is not affected
    g.release("192.0.2.1")
    assert g.admit("192.0.2.1") is None
    assert g.open_from("192.0.2.1") == 3


def test_new_connections_a_minute_come_in_a_burst_then_at_the_rate() -> None:
    g, clock = guard(max_per_address=None, connect_rate=6)
    assert all(g.admit("192.0.2.1") is None for _ in range(6))
    assert (
        g.admit("192.0.2.1")
        == "Too many new connections from your address; try again in 10 seconds."
    )
    clock.now += 10  # 6 a minute: one more every 10 s
    assert g.admit("192.0.2.1") is None
    assert g.admit("192.0.2.1") is not None


def test_wrong_passwords_lock_the_address_out_for_a_while() -> None:
    g, clock = guard(auth_failures=3, auth_lockout=60)
    for _ in range(2):
        g.password_failed("192.0.2.1")
    assert g.admit("192.0.2.1") is None  # two mistakes are allowed
    g.password_failed("192.0.2.1")
    assert (
        g.admit("192.0.2.1")
        == "Too many wrong passwords from your address; try again in 61 seconds."
    )
    assert g.admit("192.0.2.2") is None
    clock.now += 61
    assert g.admit("192.0.2.1") is None
    g.password_failed("192.0.2.1")  # still within ten minutes of the others: locked again
    assert g.admit("192.0.2.1") is not None


def test_old_wrong_passwords_are_forgotten() -> None:
    g, clock = guard(auth_failures=3)
    g.password_failed("192.0.2.1")
    g.password_failed("192.0.2.1")
    clock.now += 11 * 60
    g.password_failed("192.0.2.1")
    assert g.admit("192.0.2.1") is None


def test_wrong_passwords_from_many_addresses_are_limited_together() -> None:
    """50 addresses with 5 guesses each is not 250 guesses: past the shared allowance only
    addresses that once gave the right password may try, until it refills."""
    g, clock = guard(auth_failures=5, global_auth_failures=30)
    g.password_accepted("198.51.100.7")
    for n in range(30):
        assert g.password_refused(f"192.0.2.{n}") is None
        g.password_failed(f"192.0.2.{n}")
    assert g.password_refused("192.0.2.200") == (
        "Too many wrong passwords have been tried on this server lately; try again in 2 seconds."
    )
    assert g.password_refused("198.51.100.7") is None  # a known member is not kept out
    assert g.admit("192.0.2.200") is None  # connecting is not refused: only guessing
    clock.now += 2
    assert g.password_refused("192.0.2.200") is None
    g.password_failed("192.0.2.200")
    assert g.password_refused("192.0.2.201") is not None


def test_bans_for_a_time_or_until_restart_and_lifted() -> None:
    g, clock = guard()
    assert g.ban("192.0.2.1", 120) == "192.0.2.1"
    g.ban("2001:db8::5", None)
    assert g.admit("192.0.2.1") == "Your address is banned from this server for 2 more minutes."
    assert g.admit("2001:db8::77") == "Your address is banned from this server."  # same /64
    assert g.bans() == {"192.0.2.1": 120, "2001:db8::/64": None}
    clock.now += 121
    assert g.admit("192.0.2.1") is None
    assert g.unban("2001:db8::1")
    assert not g.unban("2001:db8::1")
    assert g.admit("2001:db8::77") is None
    assert g.bans() == {}


def test_many_addresses_do_not_grow_the_table_without_bound() -> None:
    g, clock = guard(connect_rate=60)
    for n in range(3 * PRUNE_AT):
        host = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        assert g.admit(host) is None
        g.release(host)
        clock.now += 1  # each address's one-token debt is repaid within a second
    assert len(g._records) <= PRUNE_AT + 1


def test_addresses_that_cannot_be_forgotten_yet_are_not_swept_on_every_arrival() -> None:
    """Thousands connected at once: a new address must not cost a sweep of them all."""
    g, _ = guard(connect_rate=60)
    sweeps = 0
    original = g._prune

    def counting(now: float) -> None:
        nonlocal sweeps
        sweeps += 1
        original(now)

    g._prune = counting  # type: ignore[method-assign]
    for n in range(3 * PRUNE_AT):
        assert g.admit(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}") is None  # all stay open
    assert sweeps <= 3  # at PRUNE_AT, then each time the table doubled


# --- against a real server ----------------------------------------------------------------------


def refusal_of(server: RunningServer) -> str:
    """Connect; the one line the server says in place of its banner before it closes."""
    client = server.connect()
    lines = expect_closed(client)
    assert len(lines) == 1, lines
    assert lines[0].startswith("! "), lines
    return lines[0][2:]


def banner_of(server: RunningServer) -> Any:
    client = server.connect()
    line = client.read_line()
    assert not line.startswith(("!", "{")), line
    return client


def test_connections_past_the_per_address_limit_are_refused_in_one_sentence(start_server) -> None:
    server = start_server(max_per_address=3)
    first, _ = join(server, "alice")
    others = [banner_of(server) for _ in range(2)]
    assert (
        refusal_of(server) == "Too many connections from your address (at most 3); close one first."
    )
    sync(first)  # the members are not disturbed
    others[0].close()
    deadline = time.monotonic() + TIMEOUT
    while server.call(lambda: server.server.guard.open_from("127.0.0.1")) > 2:
        assert time.monotonic() < deadline, "the closed connection was never counted off"
        sync(first)
    banner_of(server)  # a place is free again


def test_a_burst_of_new_connections_is_refused_past_the_rate(start_server) -> None:
    server = start_server(connect_rate=5)
    clients = [banner_of(server) for _ in range(5)]
    refusal = refusal_of(server)
    assert re.fullmatch(
        r"Too many new connections from your address; try again in 1[0-2] seconds\.", refusal
    ), refusal  # 5 a minute: one more every 12 s
    for client in clients:
        client.close()


def test_a_json_client_that_sent_hello_at_once_still_reads_the_refusal(start_server) -> None:
    server = start_server(max_per_address=1)
    banner_of(server)
    late = server.connect()
    late.send_raw(json_line(hello("bob")) + json_line(say("hi")) * 50)  # unread when we close
    lines = expect_closed(late)
    assert lines == ["! Too many connections from your address (at most 1); close one first."]


def test_wrong_passwords_lock_the_address_out(start_server) -> None:
    server = start_server(password="pw", auth_failures=2, auth_lockout=60)
    for _ in range(2):
        client = server.connect()
        client.read_line()
        client.send_json(hello("mallory", password="guess"))
        expect_error(client, "auth_failed")
        expect_closed(client)
    assert refusal_of(server).startswith("Too many wrong passwords from your address; try again in")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs all of 127/8 on loopback")
def test_password_guesses_from_many_addresses_are_limited_together(start_server) -> None:
    server = start_server(password="pw", auth_failures=5, global_auth_failures=3)
    alice = server.connect()
    alice.read_line()
    alice.send_json(hello("alice", password="pw"))
    alice.expect("welcome")
    for n in range(3):
        guesser = LineClient("127.0.0.1", server.port, TIMEOUT, source=f"127.0.3.{n + 1}")
        server.clients.append(guesser)
        guesser.read_line()
        guesser.send_json(hello("mallory", password="guess"))
        assert expect_error(guesser, "auth_failed")["message"] == "Wrong password."
    late = LineClient("127.0.0.1", server.port, TIMEOUT, source="127.0.3.9")
    server.clients.append(late)
    late.read_line()
    late.send_json(hello("bob", password="pw"))  # even the right one, for now
    assert "lately" in expect_error(late, "auth_failed")["message"]
    again = server.connect()  # 127.0.0.1 gave the right password before
    again.read_line()
    again.send_json(hello("alice2", password="pw"))
    assert again.expect("welcome")["name"] == "alice2"


def test_a_normal_person_never_meets_the_default_limits(start_server) -> None:
    """Three clients open, a wrong password typed twice, and a dozen quick rejoins."""
    server = start_server(password="pw", **DEFAULT_LIMITS)
    for _ in range(2):
        client = server.connect()
        client.read_line()
        client.send_json(hello("alice", password="typo"))
        expect_error(client, "auth_failed")
    tabs = [server.connect() for _ in range(3)]
    for n, tab in enumerate(tabs):
        assert not tab.read_line().startswith("!")
        tab.send_json(hello(f"alice{n}", password="pw"))
        tab.expect("welcome")
    for round_number in range(12):
        client = server.connect()
        assert not client.read_line().startswith("!"), round_number
        client.send_json(hello("bob", password="pw"))
        client.expect("welcome")
        client.send_json({"type": "bye"})
        expect_closed(client)
    tabs[0].send_json({"type": "ping", "id": "still-there"})
    assert next_of(tabs[0], "pong")["id"] == "still-there"


def test_without_a_rate_a_flood_is_read_at_once(start_server) -> None:
    # At the default rate (20 a second after a burst of 60) these 300 lines would take 12 s;
    # with --rate 0 they are all acknowledged well within the usual deadline.
    server = start_server(rate=0)
    alice, _ = join(server, "alice")
    alice.send_raw(b"".join(json_line(say(f"m{n}", str(n))) for n in range(300)))
    acks = [alice.expect("ack", timeout=TIMEOUT) for _ in range(300)]
    assert [ack["id"] for ack in acks] == [str(n) for n in range(300)]
    assert server.call(lambda: [c.pace for c in server.server.connections]) == [None]


def test_tcpchat_join_says_why_it_was_refused(start_server, tmp_path) -> None:
    server = start_server(max_per_address=1)
    banner_of(server)  # the one connection this address may have
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCPCHAT_")}
    env["TCPCHAT_CONFIG_DIR"] = str(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpchat",
            "join",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--name",
            "bob",
        ],
        input="hello\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=6 * TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: the server refused the connection: Too many connections from your address "
        "(at most 1); close one first.\n"
    )


def test_with_tls_the_door_counts_connections_before_their_handshake(
    start_server, tmp_path
) -> None:
    """Silent connections that never start TLS still count: a handshake is no way around the limit."""
    import ssl

    from tcpchat import tls

    cert, key = tls.self_signed_certificate(tmp_path, "localhost")
    server = start_server(max_per_address=2, tls=tls.server_context(cert, key))
    silent = [
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) for _ in range(2)
    ]
    deadline = time.monotonic() + TIMEOUT
    while server.call(lambda: server.server.guard.open_from("127.0.0.1")) < 2:
        assert time.monotonic() < deadline, "the silent connections were never counted"
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    with client.wrap_socket(raw) as wrapped:  # the refusal still comes inside TLS
        data = b""
        while not data.endswith(b"\n"):
            chunk = wrapped.recv(4096)
            assert chunk, data
            data += chunk
    assert data == b"! Too many connections from your address (at most 2); close one first.\n"
    for sock in silent:
        sock.close()


def test_connections_opened_before_a_lockout_cannot_go_on_guessing(start_server) -> None:
    server = start_server(password="pw", auth_failures=2, auth_lockout=60)
    opened = [server.connect() for _ in range(5)]
    for client in opened:
        client.read_line()
    for client in opened[:2]:
        client.send_json(hello("mallory", password="guess"))
        expect_error(client, "auth_failed")
    for client in opened[2:]:  # even the right password: the address is locked
        client.send_json(hello("mallory", password="pw"))
        error = expect_error(client, "auth_failed")
        assert error["message"].startswith(
            "Too many wrong passwords from your address; try again in"
        )
        expect_closed(client)
