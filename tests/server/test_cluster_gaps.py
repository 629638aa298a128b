"""A process that missed part of the room's events (cut off for longer than the events stream
keeps them) delivers the messages in between from the shared history, in order, before the
next one."""

from __future__ import annotations

import pytest
from support import TIMEOUT
from support.chat import collect

pytest.importorskip("redis.asyncio", reason="the redis package is not installed")


def test_the_messages_a_process_missed_are_read_from_the_history_in_order(cluster) -> None:
    first, second = cluster(2)
    bob, alice = first.join("bob"), second.join("alice")
    for n in range(1, 31):
        alice.send_json({"type": "say", "text": f"m{n}", "id": f"m{n}"})
    got, _ = collect(bob, "message", 30)
    assert [m["seq"] for m in got] == list(range(1, 31))
    side = first.server.cluster
    live = side.live

    def missed_from_10_to_20() -> None:  # as if 11..19 had been trimmed while it was away
        live.seen_seq = 10
        side.spawn(live._fill_gap(20))

    first.call(missed_from_10_to_20)
    again, _ = collect(bob, "message", 9, timeout=3 * TIMEOUT)
    assert [(m["seq"], m["text"]) for m in again] == [(n, f"m{n}") for n in range(11, 20)]
    assert first.call(lambda: live.seen_seq) == 20
