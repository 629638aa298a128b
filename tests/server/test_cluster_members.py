"""What members do to one another across the processes of a cluster, through a real
`redis-server`: private messages, renames, look-alike names, a name taken back with its token,
and a process that was cut off for longer than its lease coming back."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support import TIMEOUT
from support.chat import next_of
from support.redis import RedisServer, serving_processes
from support.running import RunningServer
from support.wire import LineClient

pytest.importorskip("redis", reason="the redis package is not installed")


def next_of_any(client: LineClient, *kinds: str) -> dict[str, Any]:
    """The next event of one of `kinds` (others skipped)."""
    lines = client.read_until(lambda line: json.loads(line)["type"] in kinds)
    return json.loads(lines[-1])


def hello(server: RunningServer, name: str, **fields: Any) -> tuple[LineClient, dict[str, Any]]:
    client = server.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": name, "version": 1, **fields})
    return client, next_of_any(client, "welcome", "error")


def test_a_private_message_reaches_a_member_on_another_process(cluster) -> None:
    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    assert next_of(alice, "joined")["name"] == "bob"
    alice.send_json({"type": "dm", "to": "BOB", "text": "psst", "id": "d1"})
    ack = next_of(alice, "ack")
    assert (ack["id"], ack["delivered"], ack["seq"]) == ("d1", 1, None)
    private = next_of(bob, "private")
    assert (private["from"], private["to"], private["text"]) == ("alice", "bob", "psst")
    alice.send_json({"type": "dm", "to": "nobody", "text": "hello?", "id": "d2"})
    error = next_of(alice, "error")
    assert (error["code"], error["id"]) == ("no_such_member", "d2")
    bob.send_json({"type": "dm", "to": "alice", "text": "back", "id": "d3"})
    assert next_of(alice, "private")["text"] == "back"
    alice.send_json({"type": "search", "text": "psst"})
    assert next_of(alice, "results")["messages"] == []  # never stored


def test_a_rename_is_seen_everywhere_and_holds_the_name_cluster_wide(cluster) -> None:
    first, second = cluster(2)
    alice, bob = first.join("alice"), second.join("bob")
    next_of(alice, "joined")
    bob.send_json({"type": "nick", "name": "robert"})
    for member in (alice, bob):  # the sender included
        renamed = next_of(member, "renamed")
        assert (renamed["old"], renamed["new"]) == ("bob", "robert")
    alice.send_json({"type": "nick", "name": "ROBERT"})
    assert next_of(alice, "error")["code"] == "name_taken"
    _, taken = hello(first, "Robert")
    assert taken["code"] == "name_taken"
    _, free = hello(first, "bob")  # the old name is free again
    assert free["type"] == "welcome"
    assert sorted(free["names"]) == ["alice", "bob", "robert"]
    bob.send_json({"type": "say", "text": "hi", "id": "s1"})
    assert next_of(alice, "message")["from"] == "robert"


def test_a_look_alike_name_is_refused_on_another_process(cluster) -> None:
    first, second = cluster(2)
    first.join("alice")
    _, refused = hello(second, "\u0430lice")  # a Cyrillic а
    assert refused["code"] == "name_taken"
    assert "looks like 'alice'" in refused["message"]
    bob = second.join("bob")
    bob.send_json({"type": "nick", "name": "al_ice"})
    assert next_of(bob, "error")["code"] == "name_taken"


def test_a_token_takes_the_name_back_from_another_process(cluster) -> None:
    first, second = cluster(2)
    watcher = second.join("watcher")
    old, welcome = hello(first, "alice")
    assert next_of(watcher, "joined")["name"] == "alice"
    new, again = hello(second, "alice", token=welcome["token"])
    assert again["type"] == "welcome" and again["token"] != welcome["token"]
    assert again["members"] == 2
    shutdown = next_of(old, "shutdown")
    assert shutdown["reason"] == "replaced"
    left, joined = next_of(watcher, "left"), next_of(watcher, "joined")
    assert (left["name"], left["reason"], joined["name"]) == ("alice", "replaced", "alice")
    assert joined["members"] == 2
    _, stale = hello(first, "alice", token=welcome["token"])  # that token's connection is gone
    assert stale["code"] == "name_taken"
    new.send_json({"type": "say", "text": "still me", "id": "t1"})
    assert next_of(watcher, "message")["from"] == "alice"
    assert next_of(new, "ack")["delivered"] == 1  # the watcher, on the other process
    watcher.send_json({"type": "who"})
    assert next_of(watcher, "members")["names"] == ["alice", "watcher"]


def test_a_token_takes_the_name_back_on_the_same_process(cluster) -> None:
    first, second = cluster(2)
    watcher = second.join("watcher")
    old, welcome = hello(first, "alice")
    next_of(watcher, "joined")
    _, again = hello(first, "alice", token=welcome["token"])
    assert again["type"] == "welcome"
    assert next_of(old, "shutdown")["reason"] == "replaced"
    left, joined = next_of(watcher, "left"), next_of(watcher, "joined")
    assert (left["reason"], joined["name"], joined["members"]) == ("replaced", "alice", 2)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")
def test_a_process_cut_off_past_its_lease_takes_its_members_back_and_catches_up(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A real `serve --cluster` process stopped (SIGSTOP) for longer than its lease: the other
    announces its member's `left`; when it runs again its member is back (`joined`), has
    missed nothing said meanwhile, in order, and can talk."""
    with serving_processes(redis_server, tmp_path, ("a", "b"), "--memory") as processes:
        ports = [port for _, port in processes]
        clients = []
        for port, name in zip(ports, ("alice", "bob"), strict=True):
            client = LineClient("127.0.0.1", port, 4 * TIMEOUT)
            client.read_line()
            client.send_json({"type": "hello", "name": name, "version": 1})
            next_of(client, "welcome")
            clients.append(client)
        alice, bob = clients
        assert next_of(alice, "joined")["name"] == "bob"
        processes[1][0].popen.send_signal(signal.SIGSTOP)
        left = next_of(alice, "left")
        assert (left["name"], left["reason"]) == ("bob", "disconnected")
        for n in range(5):
            alice.send_json({"type": "say", "text": f"meanwhile {n}", "id": f"m{n}"})
        for _ in range(5):
            next_of(alice, "ack")
        processes[1][0].popen.send_signal(signal.SIGCONT)
        back = next_of(alice, "joined")
        assert (back["name"], back["members"]) == ("bob", 2)
        seen = []
        while len([e for e in seen if e["type"] == "message"]) < 5:
            seen.append(bob.read_json())
        assert not [e for e in seen if e["type"] == "left" and e["name"] == "bob"], seen
        got = [e for e in seen if e["type"] == "message"]
        assert [(m["seq"], m["text"]) for m in got] == [(n + 1, f"meanwhile {n}") for n in range(5)]
        bob.send_json({"type": "say", "text": "I'm back", "id": "b1"})
        assert next_of(bob, "ack")["seq"] == 6
        assert next_of(alice, "message")["text"] == "I'm back"
        alice.close()
        bob.close()


@pytest.mark.slow
def test_a_crowd_joining_at_once_is_let_in_whatever_the_redis_clients_pool(cluster) -> None:
    """More joins at once than the Redis client keeps connections: they wait their turn for
    one rather than being refused as `unavailable`."""
    (server,) = cluster(1)
    crowd = 250
    clients = []
    for _ in range(crowd):
        client = server.connect()
        client.read_line()
        clients.append(client)
    for n, client in enumerate(clients):  # all sent before any is answered
        client.send_json({"type": "hello", "name": f"m{n}", "version": 1})
    answers = [next_of_any(client, "welcome", "error") for client in clients]
    assert [a["type"] for a in answers] == ["welcome"] * crowd, [
        a for a in answers if a["type"] != "welcome"
    ][:3]
    for client in clients:
        client.close()
