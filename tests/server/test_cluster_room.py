"""A room shared through a real `redis-server` (started on a free loopback port, killed and
restarted where a test needs it): one order for every process, one set of names, leases that
tell who died, and Redis going away as one sentence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import pytest
from support import TIMEOUT
from support.redis import RedisServer

redis = pytest.importorskip("redis.asyncio", reason="the redis package is not installed")

from tcpchat.protocol import Joined, LeaveReason, Left, Message  # noqa: E402
from tcpchat.server.cluster.leases import Leases  # noqa: E402
from tcpchat.server.cluster.shared_room import ClusterUnavailable, SharedRoom  # noqa: E402

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
R = TypeVar("R")


def run(redis_server: RedisServer, work: Callable[..., Awaitable[R]]) -> R:
    """Run `work(process_a, process_b)`: the same room seen by two processes, each with its
    own client, within the tests' deadline."""

    async def main() -> R:
        clients = [redis.Redis.from_url(redis_server.url, decode_responses=True) for _ in "ab"]
        try:
            rooms = [
                SharedRoom(client, "lobby", process)
                for client, process in zip(clients, "AB", strict=True)
            ]
            return await asyncio.wait_for(work(*rooms), 3 * TIMEOUT)
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())


def test_two_processes_saying_at_once_get_one_order_without_gaps(redis_server) -> None:
    async def work(a: SharedRoom, b: SharedRoom) -> tuple[list[Any], list[Message]]:
        seqs: list[int] = []
        for start in range(0, 200, 20):  # both processes at once, twenty requests each at a time
            says = [
                room.say(f"user{room.process}", f"{room.process}{n}", T0)
                for n in range(start, start + 20)
                for room in (a, b)
            ]
            seqs += await asyncio.gather(*says)
        events = await b.events_after("0")
        while len(events) < 400:
            events += await b.events_after(events[-1].id)
        return [sorted(seqs), [e.event for e in events]], await a.since(0, 1000)

    (seqs, events), history = run(redis_server, work)
    assert seqs == list(range(1, 401))
    assert [e.seq for e in events] == list(range(1, 401))  # stream order is seq order
    assert [m.seq for m in history] == list(range(1, 401))
    assert [(m.sender, m.text) for m in history] == [(e.sender, e.text) for e in events]


def test_history_is_read_by_seq_both_ways(redis_server) -> None:
    async def work(a: SharedRoom, b: SharedRoom) -> list[list[int]]:
        for n in range(1, 11):
            await a.say("alice", f"m{n}", T0, me=n == 3)
        pages = [
            await b.since(7, 100),
            await b.since(0, 3),
            await b.before(None, 4),
            await b.before(5, 100),
            await b.before(1, 10),
        ]
        assert (await b.since(0, 10))[2].me
        return [[m.seq for m in page] for page in pages]

    assert run(redis_server, work) == [[8, 9, 10], [8, 9, 10], [7, 8, 9, 10], [1, 2, 3, 4], []]


def test_a_name_is_one_members_across_processes_and_freed_with_left(redis_server) -> None:
    async def work(a: SharedRoom, b: SharedRoom) -> list[Any]:
        first = await a.join("Alice", "c1", T0)
        taken = await b.join("ALICE", "c9", T0)
        other = await b.join("bob", "c2", T0)
        not_yours = await b.leave("alice", "c2", LeaveReason.DISCONNECTED, T0)
        left = await a.leave("ALICE", "c1", LeaveReason.KICKED, T0)
        again = await a.leave("alice", "c1", LeaveReason.KICKED, T0)
        events = [e.event for e in await b.events_after("0")]
        return [first, taken, other, not_yours, left, again, events, await a.names()]

    first, taken, other, not_yours, left, again, events, names = run(redis_server, work)
    assert (first.claimed, first.members) == (True, 1)
    assert not taken.claimed and taken.holder.endswith("Alice")
    assert (other.claimed, other.members) == (True, 2)
    assert (not_yours, left, again) == (None, 1, None)
    assert events == [
        Joined(name="Alice", members=1, ts=T0),
        Joined(name="bob", members=2, ts=T0),
        Left(name="Alice", members=1, reason=LeaveReason.KICKED, ts=T0),
    ]
    assert names == ["bob"]


def test_a_dead_processs_members_leave_and_their_names_are_free(redis_server) -> None:
    async def work(a: SharedRoom, b: SharedRoom) -> list[Any]:
        for n in range(3):
            await a.join(f"a{n}", f"c{n}", T0)
        await b.join("b0", "c0", T0)
        start = await b.newest_event_id()
        gone = await b.forget_process("A", T0)
        twice = await b.forget_process("A", T0)
        events = [e.event for e in await b.events_after(start)]
        claim = await b.join("a1", "c5", T0)
        return [gone, twice, events, claim.claimed, await b.names()]

    gone, twice, events, claimed, names = run(redis_server, work)
    assert (gone, twice, claimed) == (3, 0, True)
    # One `left` each, in the order freed (a set's order), each with the count after it.
    assert sorted(e.name for e in events) == ["a0", "a1", "a2"]
    assert [e.members for e in events] == [3, 2, 1]
    assert {e.reason for e in events} == {LeaveReason.DISCONNECTED}
    assert names == ["a1", "b0"]


def test_a_lease_that_is_not_renewed_runs_out(redis_server) -> None:
    async def work(a: SharedRoom, b: SharedRoom) -> list[Any]:
        short = Leases(a.client, "A", lease=0.2)
        long = Leases(b.client, "B", lease=60)
        alive = [await short.renew(), await long.renew()]  # neither had a lease yet
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while "A" not in await long.expired():  # polled with a deadline, as Redis's clock runs
            assert asyncio.get_running_loop().time() < deadline, "the lease never ran out"
            await asyncio.sleep(0.05)
        expired = await long.expired()
        await long.forget("A")
        lost = await short.renew()  # A's lease had run out: it learns it was taken for dead
        return [alive, expired, await long.expired(), await long.renew(), lost]

    alive, expired, after, still, lost = run(redis_server, work)
    assert alive == [(1, False), (2, False)] and expired == ["A"] and after == []
    assert still == (2, True) and lost == (2, False)  # A is back (as far as leases go)


def test_redis_gone_is_one_sentence_and_the_counter_never_goes_back(redis_server) -> None:
    async def said(a: SharedRoom, b: SharedRoom) -> int:
        for n in range(5):
            await a.say("alice", f"m{n}", T0)
        await a.client.delete(a.keys.seq)  # a counter lost while the history was kept
        return await b.raise_seq()

    assert run(redis_server, said) == 5
    redis_server.stop()

    async def refused(a: SharedRoom, b: SharedRoom) -> str:
        with pytest.raises(ClusterUnavailable) as error:
            await a.say("alice", "into the void", T0)
        return str(error.value)

    sentence = run(redis_server, refused)
    assert sentence.startswith("Redis could not keep the messages: ") and sentence.endswith(".")
    assert not sentence.endswith("..")
    redis_server.start()  # the same append-only file: what Redis acknowledged is back

    async def back(a: SharedRoom, b: SharedRoom) -> int:
        await a.raise_seq()
        return await a.say("alice", "back", T0)

    assert run(redis_server, back) == 6
