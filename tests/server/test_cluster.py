"""Several servers sharing one room through a real `redis-server`: one order of messages for the
members of every process, one set of names, the cluster-wide count, and a client that moves to
another process missing nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import TIMEOUT
from support.chat import collect, next_of
from support.redis import RedisServer, serving_processes
from support.wire import LineClient

pytest.importorskip("redis", reason="the redis package is not installed")

from tcpchat.server.cluster.leases import LEASE, RENEW_EVERY


def messages_of(client: LineClient, count: int) -> list[dict[str, Any]]:
    """The next `count` messages a member receives (other events skipped)."""
    return collect(client, "message", count)[0]


def test_members_of_three_processes_see_one_order(cluster) -> None:
    servers = cluster(3)
    members = [server.join(f"m{n}") for n, server in enumerate(servers)]
    for member in members[:-1]:  # the last join reaches the others, with the cluster's count
        while (event := member.read_json())["type"] != "joined" or event["members"] < 3:
            pass
    for round_ in range(20):
        for n, member in enumerate(members):
            member.send_json({"type": "say", "text": f"m{n} says {round_}", "id": f"{n}-{round_}"})
    seen = [messages_of(member, 40) for member in members]  # the other two's 20 each
    orders = [[(m["seq"], m["from"], m["text"]) for m in got] for got in seen]
    everything = sorted({item for order in orders for item in order})
    assert [seq for seq, _, _ in everything] == list(range(1, 61))  # one numbering, no gaps
    for n, order in enumerate(orders):
        assert order == [item for item in everything if item[1] != f"m{n}"]  # in seq order


def test_a_name_is_taken_across_processes_and_the_count_is_the_clusters(cluster) -> None:
    first, second = cluster(2)
    alice = first.join("alice")
    client = second.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": "ALICE", "version": 1})
    assert client.expect("error")["code"] == "name_taken"
    bob = second.join("bob")
    joined = alice.expect("joined")
    assert (joined["name"], joined["members"]) == ("bob", 2)
    bob.send_json({"type": "who"})
    assert bob.expect("members")["names"] == ["alice", "bob"]
    bob.close()
    left = alice.expect("left")
    assert (left["name"], left["members"]) == ("bob", 1)
    again = second.join("bob")  # the name is free again, on any process
    assert again is not None


def test_a_client_that_moves_to_another_process_misses_nothing(cluster) -> None:
    first, second = cluster(2)
    talker = first.join("talker")
    mover = first.join("mover")
    talker.send_json({"type": "say", "text": "before", "id": "b"})
    seen = messages_of(mover, 1)[0]["seq"]
    mover.close()
    assert next_of(talker, "left")["name"] == "mover"
    for n in range(5):
        talker.send_json({"type": "say", "text": f"while away {n}", "id": f"w{n}"})
    collect(talker, "ack", 5)[0]  # ("before"'s came before the `left`)
    client = second.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": "mover", "version": 1, "since": seen})
    welcome = client.expect("welcome")
    assert [m["text"] for m in welcome["history"]] == [f"while away {n}" for n in range(5)]
    assert (welcome["seq"], welcome["gap"]) == (seen + 5, False)


def test_when_a_process_is_killed_the_others_say_its_members_left(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Real `tcpchat serve --cluster` processes; one is SIGKILLed: its lease runs out and the
    other announces its member's `left` (disconnected) and frees the name, within a few seconds
    (the lease, 3 s, and one renewal, 1 s)."""
    with serving_processes(redis_server, tmp_path, ("a", "b"), "--memory") as processes:
        ports = [port for _, port in processes]
        alice = LineClient("127.0.0.1", ports[0], TIMEOUT)
        alice.read_line()
        alice.send_json({"type": "hello", "name": "alice", "version": 1})
        alice.expect("welcome")
        bob = LineClient("127.0.0.1", ports[1], TIMEOUT)
        bob.read_line()
        bob.send_json({"type": "hello", "name": "bob", "version": 1})
        bob.expect("welcome")
        assert alice.expect("joined")["members"] == 2
        processes[1][0].popen.send_signal(signal.SIGKILL)
        started = time.monotonic()
        left = alice.read_json(timeout=3 * TIMEOUT)
        waited = time.monotonic() - started
        assert (left["type"], left["name"], left["reason"], left["members"]) == (
            "left", "bob", "disconnected", 1,
        )  # fmt: skip
        assert waited < LEASE + 2 * RENEW_EVERY + 1, f"{waited:.1f} s"
        alice.send_json({"type": "who"})
        assert alice.expect("members")["names"] == ["alice"]
        bob.close()
        alice.close()


def test_redis_gone_refuses_messages_keeps_everyone_and_comes_back(
    cluster, redis_server: RedisServer
) -> None:
    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    alice.send_json({"type": "say", "text": "one", "id": "1"})
    assert collect(alice, "ack", 1)[0][0]["seq"] == 1
    redis_server.stop()
    alice.send_json({"type": "say", "text": "into the void", "id": "2"})
    refused = alice.expect("error")
    assert (refused["code"], refused["id"]) == ("unavailable", "2")
    redis_server.start()  # the same append-only file
    deadline = time.monotonic() + 3 * TIMEOUT
    while True:  # the members stayed connected; a resend goes through once Redis is back
        alice.send_json({"type": "say", "text": "two", "id": "3"})
        answer = alice.read_json()
        while answer["type"] not in ("ack", "error"):
            answer = alice.read_json()
        if answer["type"] == "ack":
            break
        assert time.monotonic() < deadline, "Redis came back but messages are still refused"
        time.sleep(0.1)
    assert answer["seq"] == 2  # the refused message took no number
    got = messages_of(bob, 2)
    assert [(m["seq"], m["text"]) for m in got] == [(1, "one"), (2, "two")]


def test_an_id_resent_to_another_process_with_the_token_is_not_delivered_twice(cluster) -> None:
    first, second = cluster(2)
    watcher = second.join("watcher")
    client = first.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": "alice", "version": 1})
    token = client.expect("welcome")["token"]
    client.send_json({"type": "say", "text": "once", "id": "x1"})
    ack = collect(client, "ack", 1)[0][0]
    client.close()
    heard = []
    while (event := watcher.read_json())["type"] != "left":  # the name is free again
        heard += [event["text"]] if event["type"] == "message" else []
    moved = second.connect()  # the token made on one process is known to the other
    moved.read_line()
    moved.send_json({"type": "hello", "name": "alice", "version": 1, "token": token})
    moved.expect("welcome")
    moved.send_json({"type": "say", "text": "once", "id": "x1"})
    again = collect(moved, "ack", 1)[0][0]
    assert (again["seq"], again["id"]) == (ack["seq"], "x1")
    moved.send_json({"type": "say", "text": "twice", "id": "x2"})
    assert collect(moved, "ack", 1)[0][0]["seq"] == ack["seq"] + 1
    assert heard + [m["text"] for m in messages_of(watcher, 1)] == ["once", "twice"]


def test_the_operator_kicks_and_bans_across_processes(cluster) -> None:
    from tcpchat.server import moderation

    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    preview = first.call(lambda: moderation.preview(first.server, "/kick bob flooding"))
    assert preview.startswith("This asks the process that holds 'bob'")  # and does nothing
    answer = first.call(lambda: moderation.execute(first.server, "/kick bob flooding"))
    assert "Asked the process that holds 'bob'" in answer
    shutdown = next_of(bob, "shutdown")
    assert shutdown["reason"] == "kicked" and "flooding" in shutdown["message"]
    left = next_of(alice, "left")  # bob's join came first
    assert (left["name"], left["reason"]) == ("bob", "kicked")

    carol = second.join("carol")
    answer = first.call(lambda: moderation.execute(first.server, "/ban 127.0.0.1 5"))
    assert answer.startswith("Banned 127.0.0.1 for 5 minutes")
    for member in (alice, carol):  # both processes removed their connections from there
        next_of(member, "shutdown")
    deadline = time.monotonic() + 3 * TIMEOUT
    while not second.call(lambda: second.server.guard.bans()):
        assert time.monotonic() < deadline, "the other process never banned the address"
        time.sleep(0.02)
    first.call(lambda: moderation.execute(first.server, "/unban 127.0.0.1"))
    while second.call(lambda: second.server.guard.bans()):
        assert time.monotonic() < deadline, "the other process never lifted the ban"
        time.sleep(0.02)


def test_a_process_stops_in_time_when_redis_is_gone(cluster, redis_server: RedisServer) -> None:
    (server,) = cluster(1)
    server.join("alice")
    redis_server.stop()
    server.stop()  # RunningServer.stop fails the test if the server takes past its deadline


def test_redis_killed_mid_burst_loses_no_acknowledged_message_and_doubles_none(
    cluster, redis_server: RedisServer
) -> None:
    """A burst of 200 messages with ids; Redis is killed (SIGKILL) as the first `ack` comes
    and started again.  Every message is acknowledged or refused (`unavailable`); the refused
    are sent again with their ids until acknowledged.  In the end every message has one `seq`,
    the numbers run 1..200 without a gap, and the member on the other process got each once,
    in that order."""
    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    next_of(alice, "joined")
    burst = 200
    for n in range(burst):
        alice.send_json({"type": "say", "text": f"burst {n}", "id": f"b{n}"})
    acked: dict[str, int] = {}
    refused: set[str] = set()
    killed = False
    deadline = time.monotonic() + 6 * TIMEOUT
    while len(acked) < burst:
        assert time.monotonic() < deadline, f"{len(acked)} acked, {len(refused)} refused"
        if len(acked) + len(refused) == burst:  # everything answered: send the refused again
            if redis_server.process is None:
                redis_server.start()  # the same append-only file
            for request in sorted(refused):
                alice.send_json({"type": "say", "text": f"burst {request[1:]}", "id": request})
            refused.clear()
        event = alice.read_json(timeout=3 * TIMEOUT)
        if event["type"] == "ack":
            assert event["id"] not in acked, f"{event['id']} acknowledged twice"
            acked[event["id"]] = event["seq"]
            if not killed:
                redis_server.stop()
                killed = True
        elif event["type"] == "error":
            assert event["code"] == "unavailable", event
            refused.add(event["id"])
    assert killed
    assert sorted(acked.values()) == list(range(1, burst + 1))  # one number each, no gap
    got = messages_of(bob, burst)
    assert [m["seq"] for m in got] == list(range(1, burst + 1))
    assert {m["text"] for m in got} == {f"burst {n}" for n in range(burst)}
    text_of = {m["seq"]: m["text"] for m in got}
    assert {request: text_of[seq] for request, seq in acked.items()} == {
        f"b{n}": f"burst {n}" for n in range(burst)
    }  # each ack names its own message


def test_a_message_whose_ack_cannot_be_read_is_refused_while_redis_is_away(
    cluster, redis_server: RedisServer
) -> None:
    """Redis takes a message, then goes away before the sender's process has read it back from
    the events stream (where its ack comes from): the sender is told `unavailable` at once, not
    left waiting for as long as Redis is away; the id sent again once Redis is back is
    acknowledged with the message Redis kept, once."""
    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    next_of(alice, "joined")
    side = first.server.cluster

    def readers() -> list[asyncio.Task[Any]]:
        return [
            task
            for task in side._tasks
            if task.get_coro().__qualname__ == "LiveEvents.deliver_forever" and not task.done()
        ]

    # The moment between Redis's answer and the stream's, held: the reader stops, for sure
    # (asked again while it runs: a cancellation that lands in redis-py's blocking read can be
    # lost there).
    deadline = time.monotonic() + TIMEOUT
    while first.call(lambda: [task.cancel() for task in readers()]):
        assert time.monotonic() < deadline, "the events reader did not stop"
        time.sleep(0.01)
    alice.send_json({"type": "say", "text": "kept", "id": "k1"})
    assert messages_of(bob, 1)[0]["text"] == "kept"  # Redis has it
    redis_server.stop()
    first.call(lambda: side.spawn(side.live.deliver_forever()))  # reading again: Redis is gone
    answer = alice.read_json(timeout=3 * TIMEOUT)
    assert (answer["type"], answer.get("code"), answer.get("id")) == ("error", "unavailable", "k1")
    redis_server.start()
    assert acked_after_resends(alice, "kept", "k1")["seq"] == 1  # the message Redis kept
    assert acked_after_resends(alice, "after", "k2")["seq"] == 2
    assert messages_of(bob, 1)[0]["text"] == "after"  # "kept" reached bob once


def acked_after_resends(client: LineClient, text: str, request: str) -> dict[str, Any]:
    """Send a `say` with id `request` again after each `unavailable` (Redis coming back) until
    it is acknowledged; its ack."""
    deadline = time.monotonic() + 3 * TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"{request} never acknowledged"
        client.send_json({"type": "say", "text": text, "id": request})
        while (event := client.read_json())["type"] not in ("ack", "error"):
            pass
        if event["type"] == "ack":
            assert event["id"] == request
            return event
        assert (event["code"], event["id"]) == ("unavailable", request), event
