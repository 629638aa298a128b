"""Bounded storms against a real server, each watched by a member that must miss nothing.

Each test starts the real asyncio server (conftest's `start_server`: its own thread, 127.0.0.1, a
free port) and drives it from a pool of asyncio clients in the test's thread (support/storm.py), so
hundreds of connections need no threads.  In every storm a *watcher* joins first and reads
everything.  At the end it must have received every accepted `message` in `seq` order without a gap
(seq is global and the watcher is a member from before the first message, so it sees exactly 1 to
the room's last seq), each with the sender and text that was sent (every `ack` a sender got names
the seq to look up), and its `joined`/`left` counts must walk one by one from its welcome's count to
what a final `who` says.  Afterwards the server's set of open connections must shrink back to the
members that stayed, and the server must still answer.

The storms and their sizes:

- churn: 500 clients join and leave, at most 150 open at once, ending four ways in turn (`bye`
  after a message, a half-close without `bye`, a reset (RST) after a message, plain-mode `/quit`
  after a message), while 4 steady senders send 100 messages each, spread over the churn;
- garbage: 50 connections at once send junk (bad JSON, NULs, invalid UTF-8, lines over the 16 KiB
  limit, seeded random bytes, refused texts from members, plain-mode junk, half lines then a
  close or a reset) while a sender sends 300 messages; each answer is checked code by code;
- never-readers: 20 members with the smallest receive buffer join and never read while a sender
  sends 8,000-character messages (outgoing_limit 16 KiB) until all 20 are dropped `slow`
  (bounded at 1,500 messages);
- resets mid-line: 200 connections (members and not yet joined, JSON and plain) send half a line
  and reset, at most 100 at once, while a sender sends 200 messages; 10 members hold half a line
  through the whole storm and finish it at the end.

One more test guards what the never-reader storm once turned up: a member dropped as `slow`
must be reset, not closed, or the server's kernel goes on holding its backlog for minutes.

Per-address limits are off (every connection comes from 127.0.0.1) and the token bucket is opened
wide (`STORM`), so the storms measure the server, not its pacing.  Every wait is a read or a poll
with a deadline in units of support's TIMEOUT; every loop is bounded; each storm as a whole has
a budget (`BUDGET`, 40 s with the default TIMEOUT) under the 60 s pytest-timeout, and takes a
second or two on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
from collections import Counter, defaultdict

import pytest
from support import TIMEOUT
from support.chat import hello, json_line, say
from support.running import RunningServer
from support.storm import (
    Event,
    Peer,
    Pool,
    Progress,
    poll_server,
    report,
    run_storm,
    send_across,
    together,
)
from support.wire import kernel_sockets, recv_until_closed

# Storms of hundreds of connections: left out of the fast loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

STORM = {"max_per_address": None, "connect_rate": None, "rate": 1e6, "burst": 10**6, "byte_rate": 0}
LINE_LIMIT = 16 * 1024
MAX_TEXT = 1024
# Every error code PROTOCOL.md names.
ERROR_CODES = {
    "bad_json",
    "bad_message",
    "unknown_type",
    "not_joined",
    "already_joined",
    "bad_name",
    "name_taken",
    "empty_text",
    "text_too_long",
    "bad_text",
    "line_too_long",
    "bad_utf8",
    "no_such_member",
    "version_unsupported",
    "auth_failed",
    "server_full",
}


# --- 1. churn while messages flow ----------------------------------------------------------------

CHURN = 500
CHURN_OPEN = 150
STEADY = 4
STEADY_MESSAGES = 100
STEADY_BATCH = 5
CHURN_WAYS = ("bye", "half-close", "reset", "plain /quit")


async def churn_one(
    pool: Pool, n: int, acked: dict[int, tuple[str, str]], said: dict[str, list[str]]
) -> tuple[str, str]:
    """One client joins and leaves one of four ways; returns its name and the reason expected."""
    name = f"c{n:03}"
    way = CHURN_WAYS[n % len(CHURN_WAYS)]
    text = f"{name} says hi"
    if way == "plain /quit":
        peer = await pool.open(name)
        peer.send_raw(f"{name}\n".encode())
        await peer.until_line(lambda line: b"/help" in line)  # the greeting's last line
        said[name] = [text]  # accepted before the goodbye (lines are handled in order)
        peer.send_raw(f"{text}\n/quit\n".encode())
        data = await peer.eof()
        peer.close()
        assert data.endswith(b"* Goodbye! You can close the connection now.\n"), data[-200:]
        return name, "quit"
    peer = await pool.open(name)
    peer.send(hello(name))
    await peer.line()  # the banner
    assert (await peer.expect("welcome"))["name"] == name
    if way in ("bye", "reset"):
        said[name] = [text]
        acked.update(await peer.say_all(name, [(text, name)]))
    if way == "bye":
        peer.send({"type": "bye"})
        await peer.eof()
        peer.close()
        return name, "quit"
    if way == "half-close":
        peer.half_close()
        await peer.eof()
        peer.close()
        return name, "disconnected"
    peer.reset()
    return name, "disconnected"


async def churn_storm(running: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with Pool(running) as pool:
        watcher = await pool.watcher()
        steady = [await pool.join(f"steady{n}") for n in range(STEADY)]
        acked: dict[int, tuple[str, str]] = {}
        said: dict[str, list[str]] = defaultdict(list)
        reasons: dict[str, str] = {}
        finished = Progress()
        gate = asyncio.Semaphore(CHURN_OPEN)

        async def churner(n: int) -> None:
            async with gate:
                name, reason = await churn_one(pool, n, acked, said)
            reasons[name] = reason
            finished.add()

        async def sender(n: int, peer: Peer) -> None:
            await send_across(
                finished, CHURN, peer, f"steady{n}", STEADY_MESSAGES, STEADY_BATCH,
                lambda i: (f"steady{n} m{i}", f"{n}-{i}"), said, acked,
            )  # fmt: skip

        began = time.monotonic()
        await together(
            *(churner(n) for n in range(CHURN)), *(sender(n, p) for n, (p, _) in enumerate(steady))
        )
        elapsed = time.monotonic() - began
        await watcher.until(lambda: len(watcher.of("left")) >= CHURN, "every churner's left")
        who = await watcher.who()

        names = [f"c{n:03}" for n in range(CHURN)]
        stayers = sorted(["watcher", *(f"steady{n}" for n in range(STEADY))])
        joined = Counter(e["name"] for e in watcher.of("joined"))
        assert joined == Counter(names + [name for name in stayers if name != "watcher"])
        assert {e["name"]: e["reason"] for e in watcher.of("left")} == reasons
        assert len(watcher.of("left")) == CHURN  # each left once
        assert watcher.walk_counts() == who["members"] == len(stayers)
        assert who["names"] == stayers
        last_seq = await asyncio.to_thread(running.call, pool.room("seq"))
        assert last_seq == CHURN // 4 * 3 + STEADY * STEADY_MESSAGES  # three ways of four speak
        watcher.check_messages(last_seq, said)
        watcher.check_acked(acked)
        assert len(acked) == CHURN // 4 * 2 + STEADY * STEADY_MESSAGES
        await poll_server(running, pool.connections(), len(stayers), 2 * TIMEOUT)
        await pool.still_serves(watcher, last_seq)
        report(
            capsys,
            f"churn: {CHURN} clients ({CHURN_OPEN} at most at once) and {last_seq} messages in "
            f"{elapsed:.2f} s",
        )


def test_churn_of_500_clients_while_messages_flow_loses_nothing(start_server, capsys):
    running = start_server(**STORM, history=10)
    run_storm(churn_storm(running, capsys))


# --- 2. garbage from 50 connections at once ------------------------------------------------------

GARBAGE = 50
GARBAGE_MESSAGES = 300
GARBAGE_BATCH = 10
GIANT = b'{"type":"say","text":"' + b"x" * (LINE_LIMIT + 4000) + b'"}'
GARBAGE_KINDS = ("json junk", "member junk", "random bytes", "plain junk", "half line")

# JSON-mode lines from a connection that has not joined, each with the code that answers it.
JUNK_BEFORE_JOINING: list[tuple[bytes, str]] = [
    (b"{junk", "bad_json"),
    (json_line(say("too early", "early"))[:-1], "not_joined"),
    (b"\xff\xfe\x00{", "bad_utf8"),
    (b"\x00" * 64, "bad_json"),
    (GIANT, "line_too_long"),
    (b"[1, 2]", "bad_message"),
    (b"", "bad_json"),
    (b"{}", "bad_message"),
    (b'{"type": 5}', "bad_message"),
    (b'{"type": "hello", "name": "x", "version": 2', "bad_json"),
]
# JSON-mode lines from a member, each refused with the code that answers it (none is a message).
JUNK_FROM_A_MEMBER: list[tuple[bytes, str]] = [
    (json_line(say("", "e"))[:-1], "empty_text"),
    (json_line(say(" \n\t ", "w"))[:-1], "empty_text"),
    (json_line(say("x" * (MAX_TEXT + 1), "l"))[:-1], "text_too_long"),
    (json_line(say("a\x00b", "n"))[:-1], "bad_text"),
    (json_line(say("\u202eevil", "b"))[:-1], "bad_text"),
    (b'{"type": "nope"}', "unknown_type"),
    (b'{"type": "say"}', "bad_message"),
    (b"\xc3\x28", "bad_utf8"),
    (b"{" * (LINE_LIMIT + 100), "line_too_long"),
    (b"{" * 100, "bad_json"),
    (json_line(hello("again"))[:-1], "already_joined"),
    (json_line({"type": "dm", "to": "nobody", "text": "hi"})[:-1], "no_such_member"),
    (json_line({"type": "nick", "name": "bad name!"})[:-1], "bad_name"),
    (json_line({"type": "nick", "name": "WATCHER"})[:-1], "name_taken"),
]


def random_junk(rng: random.Random) -> tuple[bytes, list[str]]:
    """Seeded random lines in JSON mode (NULs and all), each invalid UTF-8 or over the limit."""
    lines: list[bytes] = []
    codes: list[str] = []
    for n in range(120):
        if n % 40 == 39:
            size, code = rng.randrange(LINE_LIMIT + 2, 3 * LINE_LIMIT), "line_too_long"
        else:
            size, code = rng.randrange(0, 2000), "bad_utf8"
        line = bytearray(rng.randbytes(size).replace(b"\n", b"\x00"))
        line.insert(rng.randrange(len(line) + 1), 0xFF)  # never valid UTF-8
        lines.append(bytes(line))
        codes.append(code)
    lines[0] = b"{" + lines[0]  # JSON mode
    return b"\n".join(lines) + b"\n", codes


def answers(data: bytes) -> list[Event]:
    """The JSON lines of what a connection got, after its banner."""
    banner, *lines = data.split(b"\n")
    assert banner.startswith(b"Welcome to tcpchat"), banner
    assert lines[-1] == b"", lines[-1:]  # every line ends with \n
    return [json.loads(line) for line in lines[:-1]]


def codes_of(events: list[Event]) -> list[str]:
    errors = [event for event in events if event["type"] == "error"]
    for error in errors:
        assert error["code"] in ERROR_CODES, error
        assert isinstance(error["message"], str) and error["message"].strip(), error
    return [error["code"] for error in errors]


async def garbage_one(pool: Pool, n: int) -> tuple[str, str] | None:
    """One connection's junk, answered code by code; returns (member name, reason) if it joined."""
    kind = GARBAGE_KINDS[n % len(GARBAGE_KINDS)]
    label = f"g{n:02}"
    peer = await pool.open(label)
    if kind == "json junk":
        junk = JUNK_BEFORE_JOINING
        prefix = b"{" + b"y" * (LINE_LIMIT + 10) + b"\n" if n % 2 else b""  # too long: no mode yet
        peer.send_raw(prefix + b"\n".join(line for line, _ in junk) + b'\n{"type": "hel')
        peer.half_close()
        data = await peer.eof()
        peer.close()
        if prefix:  # a too-long first line is answered in plain text, then JSON mode begins
            banner, plain, rest = data.split(b"\n", 2)
            assert plain.startswith(b"! "), plain
            data = banner + b"\n" + rest
        events = answers(data)
        assert codes_of(events) == [code for _, code in junk]
        assert len(events) == len(junk)
        assert events[1]["id"] == "early"  # an error carries the request's id
        return None
    if kind == "member junk":
        junk = JUNK_FROM_A_MEMBER
        peer.send(hello(label))
        peer.send_raw(b"\n".join(line for line, _ in junk) + b'\n{"type": "say", "text": "nev')
        peer.half_close()
        data = await peer.eof()
        peer.close()
        events = answers(data)
        assert events[0]["type"] == "welcome", events[0]
        assert codes_of(events) == [code for _, code in junk]
        return label, "disconnected"
    if kind == "random bytes":
        junk_bytes, codes = random_junk(random.Random(20261124 + n))
        peer.send_raw(junk_bytes + b'{"type": "ping", "id": "no end')
        peer.half_close()
        data = await peer.eof()
        peer.close()
        events = answers(data)
        assert codes_of(events) == codes
        assert len(events) == len(codes)
        return None
    if kind == "plain junk":
        peer.send_raw(
            b"\x00bad\n\xff\xfe\n"
            + b"z" * (LINE_LIMIT + 1)
            + f"\n{label}\n".encode()
            + b"\xff\n/quit\n"
        )
        data = await peer.eof()
        peer.close()
        lines = data.decode().split("\n")
        assert lines[-1] == ""
        refusals = [line for line in lines if line.startswith("! ")]
        assert len(refusals) == 4, refusals  # bad name, bad UTF-8, too long, bad UTF-8
        assert "Enter another name:" in lines
        assert any(line.startswith(f"* Welcome to testserver, {label}!") for line in lines)
        assert lines[-2] == "* Goodbye! You can close the connection now."
        return label, "quit"
    if n % 2:  # half a line, then a close: the server answers nothing and closes too
        peer.send_raw(b"half a na")
        peer.half_close()
        assert (await peer.eof()).count(b"\n") == 1  # the banner only
        peer.close()
    else:  # half a line, then a reset
        peer.send_raw(b'{"type": "hello", "name": "half')
        await peer.writer.drain()
        peer.reset()
    return None


async def garbage_storm(running: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with Pool(running) as pool:
        watcher = await pool.watcher()
        sender, _ = await pool.join("sender")
        said: dict[str, list[str]] = {"sender": []}
        acked: dict[int, tuple[str, str]] = {}
        members: dict[str, str] = {}
        finished = Progress()

        async def garbage(n: int) -> None:
            member = await garbage_one(pool, n)
            if member is not None:
                members[member[0]] = member[1]
            finished.add()

        async def chat() -> None:
            await send_across(
                finished, GARBAGE, sender, "sender", GARBAGE_MESSAGES, GARBAGE_BATCH,
                lambda i: (f"clean {i}", str(i)), said, acked,
            )  # fmt: skip

        began = time.monotonic()
        await together(*(garbage(n) for n in range(GARBAGE)), chat())
        elapsed = time.monotonic() - began
        assert len(members) == 2 * GARBAGE // len(GARBAGE_KINDS)
        await watcher.until(lambda: len(watcher.of("left")) >= len(members), "every junk left")
        who = await watcher.who()

        assert sorted(e["name"] for e in watcher.of("joined")) == sorted(["sender", *members])
        assert {e["name"]: e["reason"] for e in watcher.of("left")} == members
        assert len(watcher.of("left")) == len(members)
        assert watcher.walk_counts() == who["members"] == 2
        assert who["names"] == ["sender", "watcher"]
        assert not watcher.of("error")  # nothing of it reached the watcher
        last_seq = await asyncio.to_thread(running.call, pool.room("seq"))
        assert last_seq == GARBAGE_MESSAGES  # no junk line was taken for a message
        watcher.check_messages(last_seq, said)
        watcher.check_acked(acked)
        await poll_server(running, pool.connections(), 2, 2 * TIMEOUT)
        await pool.still_serves(watcher, last_seq)
        report(
            capsys,
            f"garbage: {GARBAGE} connections of junk and {last_seq} messages in {elapsed:.2f} s",
        )


def test_garbage_from_50_connections_never_disturbs_the_chat(start_server, capsys):
    running = start_server(**STORM)
    run_storm(garbage_storm(running, capsys))


# --- 3. members that never read ------------------------------------------------------------------

NEVER_READERS = 20
SLOW_TEXT = 8000
SLOW_LIMIT = 16 * 1024
SLOW_BATCH = 10
SLOW_MAX_MESSAGES = 1500


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """What a never-reader was sent before the server dropped it (blocking, in a worker thread).

    The drop is a reset, which ends the read; the window is opened wide first so what the
    kernels already hold arrives quickly (through the smallest window that takes seconds).
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
    return recv_until_closed(sock, timeout)


async def never_read_storm(running: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with Pool(running) as pool:
        watcher = await pool.watcher()
        sender, _ = await pool.join("sender")
        names = [f"sleeper{n:02}" for n in range(NEVER_READERS)]
        sleepers = [pool.never_reader(name) for name in names]
        await watcher.until(lambda: len(watcher.of("joined")) == 1 + NEVER_READERS, "joins")
        said: dict[str, list[str]] = {"sender": []}
        acked: dict[int, tuple[str, str]] = {}
        delivered: list[int] = []

        def slow() -> list[Event]:
            return [e for e in watcher.of("left") if e["reason"] == "slow"]

        began = time.monotonic()
        for batch in range(SLOW_MAX_MESSAGES // SLOW_BATCH):
            numbers = range(batch * SLOW_BATCH, (batch + 1) * SLOW_BATCH)
            texts = [(f"{i:04} " + "z" * (SLOW_TEXT - 5), str(i)) for i in numbers]
            said["sender"] += [text for text, _ in texts]
            acked.update(await sender.say_all("sender", texts, delivered))
            if len(slow()) == NEVER_READERS:
                break
        await watcher.until(lambda: len(slow()) == NEVER_READERS, "every never-reader dropped")
        elapsed = time.monotonic() - began
        texts = [("after the drops", "after")]
        said["sender"] += [text for text, _ in texts]
        acked.update(await sender.say_all("sender", texts, delivered))
        who = await watcher.who()

        assert {e["name"]: e["reason"] for e in watcher.of("left")} == dict.fromkeys(names, "slow")
        assert len(watcher.of("left")) == NEVER_READERS
        assert watcher.walk_counts() == who["members"] == 2
        assert who["names"] == ["sender", "watcher"]
        assert delivered[0] == 1 + NEVER_READERS and delivered[-1] == 1
        assert delivered == sorted(delivered, reverse=True)  # the room only shrank
        last_seq = await asyncio.to_thread(running.call, pool.room("seq"))
        assert last_seq == len(said["sender"])
        watcher.check_messages(last_seq, said)
        watcher.check_acked(acked)
        await poll_server(running, pool.connections(), 2, 2 * TIMEOUT)
        # What each got before the cut: its welcome, then messages from seq 1 on, none skipped.
        for name, sock in zip(names, sleepers, strict=True):
            data = await asyncio.to_thread(read_until_closed, sock, TIMEOUT)
            events = [json.loads(line) for line in data.split(b"\n")[1:-1]]
            assert events[0]["type"] == "welcome" and events[0]["name"] == name, events[:1]
            seqs = [e["seq"] for e in events if e["type"] == "message"]
            assert seqs == list(range(1, len(seqs) + 1))
        await pool.still_serves(watcher, last_seq)
        report(
            capsys,
            f"never-readers: {NEVER_READERS} dropped slow after {len(said['sender']) - 1} "
            f"messages of {SLOW_TEXT} characters in {elapsed:.2f} s",
        )


def test_members_that_never_read_are_dropped_slow_and_the_watcher_misses_nothing(
    start_server, capsys
):
    running = start_server(**STORM, outgoing_limit=SLOW_LIMIT, max_text=SLOW_TEXT, history=0)
    run_storm(never_read_storm(running, capsys))


async def slow_drop_leftovers(running: RunningServer) -> None:
    async with Pool(running) as pool:
        watcher = await pool.watcher()
        sender, _ = await pool.join("sender")
        sleeper = pool.never_reader("sleeper")
        sleeper_port = sleeper.getsockname()[1]
        await watcher.until(lambda: len(watcher.of("joined")) == 2, "the sleeper's join")
        for batch in range(SLOW_MAX_MESSAGES // SLOW_BATCH):
            numbers = range(batch * SLOW_BATCH, (batch + 1) * SLOW_BATCH)
            await sender.say_all("sender", [("z" * SLOW_TEXT, str(i)) for i in numbers])
            if watcher.of("left"):
                break
        await watcher.until(lambda: len(watcher.of("left")) == 1, "the drop")
        assert watcher.of("left")[0]["reason"] == "slow"
        await poll_server(running, pool.connections(), 2, TIMEOUT)  # the server let it go
        # ... and so must its kernel: the server's end of that connection is gone (reset), not
        # left behind flushing its backlog to a peer whose window is shut.
        deadline = time.monotonic() + TIMEOUT
        while True:
            rows = [row for row in kernel_sockets(running.port) if row[0] == sleeper_port]
            if not rows or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)  # pacing between polls of the kernel's table
        assert rows == [], f"the server's end is still there: (port, state, bytes queued) {rows}"


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
def test_a_member_dropped_as_slow_leaves_no_backlog_behind_in_the_kernel(start_server):
    running = start_server(**STORM, outgoing_limit=SLOW_LIMIT, max_text=SLOW_TEXT, history=0)
    run_storm(slow_drop_leftovers(running))


# --- 4. resets mid-line --------------------------------------------------------------------------

RESETS = 200
RESET_OPEN = 100
HOLDERS = 10
RESET_MESSAGES = 200
RESET_BATCH = 10
RESET_KINDS = ("json member", "plain member", "json ping", "json bad name", "plain bad name")


async def reset_one(pool: Pool, n: int) -> str | None:
    """Half a line sent in one write after a complete one; once the complete line's answer is
    back (so the server has read the half too), a reset.  Returns the name if it was a member."""
    kind = RESET_KINDS[n % len(RESET_KINDS)]
    name = f"r{n:03}"
    peer = await pool.open(name)
    await peer.line()  # the banner
    if kind == "json member":
        peer.send_raw(json_line(hello(name)) + b'{"type": "say", "id": "lost", "text": "half a me')
        assert (await peer.expect("welcome"))["name"] == name
    elif kind == "plain member":
        peer.send_raw(f"{name}\nhalf a plain li".encode())
        await peer.until_line(lambda line: b"/help" in line)
    elif kind == "json ping":
        peer.send_raw(json_line({"type": "ping", "id": name}) + b'{"type": "hello", "name": "r')
        assert await peer.event() == {"type": "pong", "id": name}
    elif kind == "json bad name":
        peer.send_raw(json_line(hello("no spaces")) + b'{"type": "hello", "name": "r')
        error = await peer.expect("error")
        assert error["code"] == "bad_name", error
    else:
        peer.send_raw(b"no spaces\nhalf a na")
        await peer.until_line(lambda line: line == b"Enter another name:")
    peer.reset()
    return name if kind.endswith("member") else None


async def reset_storm(running: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    async with Pool(running) as pool:
        watcher = await pool.watcher()
        sender, _ = await pool.join("sender")
        holders: list[Peer] = []
        for n in range(HOLDERS):  # members that hold half a line through the storm
            holder = await pool.open(f"holder{n}")
            holder.send_raw(
                json_line(hello(f"holder{n}")) + b'{"type": "say", "id": "held", "text": "held '
            )
            await holder.line()
            await holder.expect("welcome")
            holders.append(holder)
        said: dict[str, list[str]] = {"sender": []}
        acked: dict[int, tuple[str, str]] = {}
        members: list[str] = []
        finished = Progress()
        gate = asyncio.Semaphore(RESET_OPEN)

        async def resetter(n: int) -> None:
            async with gate:
                name = await reset_one(pool, n)
            if name is not None:
                members.append(name)
            finished.add()

        async def chat() -> None:
            await send_across(
                finished, RESETS, sender, "sender", RESET_MESSAGES, RESET_BATCH,
                lambda i: (f"steady {i}", str(i)), said, acked,
            )  # fmt: skip

        began = time.monotonic()
        await together(*(resetter(n) for n in range(RESETS)), chat())
        elapsed = time.monotonic() - began
        assert len(members) == 2 * RESETS // len(RESET_KINDS)
        await watcher.until(lambda: len(watcher.of("left")) >= len(members), "every reset left")
        who = await watcher.who()
        stayers = sorted(["sender", "watcher", *(f"holder{n}" for n in range(HOLDERS))])
        assert who["names"] == stayers
        assert watcher.walk_counts() == who["members"] == len(stayers)
        expected_joins = ["sender", *(f"holder{n}" for n in range(HOLDERS)), *members]
        assert sorted(e["name"] for e in watcher.of("joined")) == sorted(expected_joins)
        left = {e["name"]: e["reason"] for e in watcher.of("left")}
        assert left == dict.fromkeys(members, "disconnected")
        assert len(watcher.of("left")) == len(members)
        await poll_server(running, pool.connections(), len(stayers), 2 * TIMEOUT)

        # The held half lines were kept whole through the storm: finished now, they are messages.
        for n, holder in enumerate(holders):
            holder.send_raw(f'{n}"}}\n'.encode())
            ack = await holder.reply()
            assert ack["id"] == "held"
            acked[ack["seq"]] = (f"holder{n}", f"held {n}")
            said[f"holder{n}"] = [f"held {n}"]
        await watcher.until(
            lambda: len(watcher.of("message")) == RESET_MESSAGES + HOLDERS, "the held messages"
        )
        last_seq = await asyncio.to_thread(running.call, pool.room("seq"))
        assert last_seq == RESET_MESSAGES + HOLDERS  # no half line became a message
        watcher.check_messages(last_seq, said)
        watcher.check_acked(acked)
        await pool.still_serves(watcher, last_seq)
        report(
            capsys,
            f"resets: {RESETS} connections reset mid-line ({RESET_OPEN} at most at once) and "
            f"{RESET_MESSAGES} messages in {elapsed:.2f} s",
        )


def test_resets_mid_line_leave_the_right_members_and_lose_no_message(start_server, capsys):
    running = start_server(**STORM)
    run_storm(reset_storm(running, capsys))
