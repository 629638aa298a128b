"""Flood control: lines and bytes, per member and per address (tcpchat.server.flood).

The buckets are tested with a clock the test moves; then against a real server, that members
from one address, each within its own rate, are held together to the address's rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from support import TIMEOUT
from support.chat import hello, json_line, say
from support.running import RunningServer
from support.wire import LineClient

from tcpchat.server.chat_server import ServerConfig
from tcpchat.server.flood import ADDRESS_BYTES, BYTE_BURST, KIB, FloodControl, FloodLimits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def control(**limits: float) -> tuple[FloodControl, Clock]:
    clock = Clock()
    return FloodControl(FloodLimits(**limits), clock), clock  # type: ignore[arg-type]


def test_one_member_may_send_its_bytes_in_a_burst_then_at_its_rate() -> None:
    flood, clock = control(rate=20, burst=60, byte_rate=1000)
    pace = flood.pace("192.0.2.1")
    assert pace is not None
    assert pace.for_bytes(BYTE_BURST * 1000) == 0.0  # the whole burst at once
    assert pace.for_bytes(500) == pytest.approx(0.5)
    clock.now += 10
    assert pace.for_bytes(1000) == 0.0


def test_members_from_one_address_share_its_allowance() -> None:
    """Thirty members with 4 KiB lines, each within its own byte rate: together they get twice
    one member's rate, not thirty times (the flood that made members on a slow link `slow`)."""
    byte_rate = 16 * KIB
    flood, clock = control(rate=20, burst=60, byte_rate=byte_rate)
    paces = [flood.pace("2001:db8::1") for _ in range(29)] + [flood.pace("2001:db8::2")]
    sent = 0.0
    for _ in range(100):  # each member sends a 4 KiB line, then the clock moves on a second
        for pace in paces:
            assert pace is not None
            clock.now += pace.for_bytes(4 * KIB)  # the member waits as long as it is told
            sent += 4 * KIB
    seconds = clock.now - 100.0
    address_rate = ADDRESS_BYTES * byte_rate
    burst = BYTE_BURST * address_rate
    assert sent <= burst + address_rate * seconds + 4 * KIB
    other = flood.pace("198.51.100.1")  # another address is not held back by them
    assert other is not None and other.for_bytes(4 * KIB) == 0.0


def test_members_from_one_address_share_a_line_rate_three_times_one_members() -> None:
    flood, _ = control(rate=10, burst=30, byte_rate=0)
    members = [flood.pace("192.0.2.1") for _ in range(10)]
    waits = [pace.for_line() for _ in range(9) for pace in members if pace is not None]
    assert waits[: 3 * 30] == [0.0] * 90  # the address's burst: three members' worth
    assert all(wait > 0 for wait in waits[90:])
    assert flood.pace("192.0.2.2").for_line() == 0.0  # type: ignore[union-attr]


def test_a_flood_at_the_default_limits_is_paced_to_the_rate_after_the_burst() -> None:
    """What `test_flooding_member_is_slowed_but_loses_nothing` (test_server.py) waits out in real
    seconds, on the clock: 300 lines from one member, each waiting as long as it is told, take
    (300 - burst) / rate seconds at a default server's limits, and the burst none at all."""
    limits = ServerConfig().flood_limits()
    clock = Clock()
    pace = FloodControl(limits, clock).pace("127.0.0.1")  # type: ignore[arg-type]
    assert pace is not None
    waits = []
    for n in range(300):
        line = json_line(say(f"flood {n}", str(n)))
        waits.append(pace.for_bytes(len(line)) + pace.for_line())
        clock.now += waits[-1]
    assert waits[: limits.burst] == [0.0] * limits.burst
    assert all(wait > 0 for wait in waits[limits.burst :])
    assert clock.now - 100.0 == pytest.approx((300 - limits.burst) / limits.rate)


def test_reconnecting_does_not_refill_an_address_and_refilled_ones_are_forgotten() -> None:
    """A flooder that closes and reconnects finds its address's buckets as it left them; an
    address is forgotten only once nothing is owed (so a scan from many cannot grow the table)."""
    flood, clock = control(rate=20, burst=60, byte_rate=1000)
    first = flood.pace("192.0.2.1")
    assert first is not None
    for _ in range(3 * 60):  # the address's whole burst of lines
        first.for_line()
    flood.release("192.0.2.1")
    again = flood.pace("192.0.2.1")
    assert again is not None and again.for_line() > 0  # still owed: it waits
    flood.release("192.0.2.1")
    flood.prune()
    assert flood.addresses == 1
    clock.now += 60
    flood.prune()
    assert flood.addresses == 0


def test_rate_0_paces_nothing_and_byte_rate_0_paces_lines_only() -> None:
    off, _ = control(rate=0, burst=0, byte_rate=1000)
    assert off.pace("192.0.2.1") is None
    lines_only, _ = control(rate=20, burst=60, byte_rate=0)
    pace = lines_only.pace("192.0.2.1")
    assert pace is not None and pace.for_bytes(10**9) == 0.0


def events_of(client: LineClient, kind: str, count: int) -> list[dict[str, Any]]:
    """The next `count` events of type `kind`, passing over the others (joins, messages)."""
    found = []
    while len(found) < count:
        event = client.read_json(4 * TIMEOUT)
        if event["type"] == kind:
            found.append(event)
    return found


@pytest.mark.slow
def test_members_on_one_address_are_slowed_together_and_lose_nothing(
    start_server: Callable[..., RunningServer],
) -> None:
    """Three members from 127.0.0.1 each send 0.8 of their own burst at once: alone, none would
    wait; together they pass the address's burst by 0.4 of a member's burst, which the address's
    rate (twice a member's) takes 0.4 * BYTE_BURST / 2 seconds to allow.  Nothing is lost."""
    byte_rate = 8 * KIB
    server = start_server(rate=1e6, burst=10**6, byte_rate=byte_rate)
    watcher = server.join("watcher")
    senders = [server.join(f"s{n}") for n in range(3)]
    text = "x" * 1000
    line_size = len(json_line(say(text, "0000")))
    count = int(0.8 * BYTE_BURST * byte_rate / line_size)
    started = time.monotonic()
    for n, sender in enumerate(senders):
        sender.send_raw(b"".join(json_line(say(text, f"{n}{i:03}")) for i in range(count)))
    for sender in senders:
        assert len(events_of(sender, "ack", count)) == count
    elapsed = time.monotonic() - started
    over = 3 * count * line_size - ADDRESS_BYTES * BYTE_BURST * byte_rate
    assert over > 0
    # A lower bound: the buckets cannot allow it sooner, however fast the machine.
    assert elapsed >= 0.9 * over / (ADDRESS_BYTES * byte_rate)
    seqs = [message["seq"] for message in events_of(watcher, "message", 3 * count)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 * count
    late = server.connect()
    late.read_line()
    late.send_json(hello("late"))
    assert late.expect("welcome")["members"] == 5
