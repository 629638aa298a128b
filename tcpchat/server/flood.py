"""How fast a member may send: token buckets for lines and for bytes, per member and per address.

A member past its rate is slowed, never refused: its reading waits as long as the buckets say,
so its own TCP window fills and nothing it sent is lost.  Lines bound the work a sender causes
(each line is an event for everyone); bytes bound what it makes everyone else download.  Both are
counted per address as well (an IPv6 /64 is one address, as in `guard`), so that thirty members
from one machine, each within its own rate, cannot together push more than a modest link carries
to every other member.  No I/O: the clock is passed in, so the tests can move time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tcpchat.server.guard import address_key

KIB = 1024
# One address may send this many times what one member may: a few people behind one NAT chat
# freely, while a crowd of connections from one machine is held to a small multiple of one.
ADDRESS_LINES = 3
ADDRESS_BYTES = 2
BYTE_BURST = 4  # seconds' worth of bytes a member may send at once (a few long pastes)
PRUNE_AT = 4096  # addresses remembered before those with nothing owed are forgotten

Clock = Callable[[], float]


class TokenBucket:
    """`rate` units a second with bursts of `burst`; says how long to wait before spending more."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def is_full(self) -> bool:
        """Whether the bucket has refilled to its burst (nothing spent is still owed)."""
        return self.tokens + (self.clock() - self.updated) * self.rate >= self.burst

    def delay(self, cost: float = 1.0) -> float:
        """Spend `cost` tokens; return the seconds to wait first (0 when they were at hand)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass(frozen=True)
class FloodLimits:
    """`rate` lines a second per member in bursts of `burst` (0: no flood limit at all), and
    `byte_rate` bytes a second per member (0: lines only).  An address gets a multiple of each."""

    rate: float = 20.0
    burst: int = 60
    byte_rate: float = 16 * KIB

    @property
    def enabled(self) -> bool:
        return self.rate > 0


class _Buckets:
    """One sender's buckets (a member's, or an address's shared by its members)."""

    __slots__ = ("bytes", "lines", "users")

    def __init__(self, limits: FloodLimits, scale: tuple[int, int], clock: Clock) -> None:
        lines_scale, bytes_scale = scale
        self.lines = TokenBucket(limits.rate * lines_scale, limits.burst * lines_scale, clock)
        self.bytes = (
            TokenBucket(
                limits.byte_rate * bytes_scale, limits.byte_rate * BYTE_BURST * bytes_scale, clock
            )
            if limits.byte_rate > 0
            else None
        )
        self.users = 0

    def is_full(self) -> bool:
        return self.lines.is_full() and (self.bytes is None or self.bytes.is_full())


class Pace:
    """One connection's pacing: how long to wait before taking its next bytes or line."""

    __slots__ = ("_address", "_own")

    def __init__(self, own: _Buckets, address: _Buckets) -> None:
        self._own = own
        self._address = address

    def for_bytes(self, count: int) -> float:
        """Seconds to wait before handling `count` more bytes read from the peer."""
        own, shared = self._own.bytes, self._address.bytes
        if own is None or shared is None:
            return 0.0
        return max(own.delay(count), shared.delay(count))

    def for_line(self) -> float:
        """Seconds to wait before handling the next line."""
        return max(self._own.lines.delay(), self._address.lines.delay())


class FloodControl:
    """Every connection's pace, with the buckets of each address shared by its connections."""

    def __init__(self, limits: FloodLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._addresses: dict[str, _Buckets] = {}
        self._prune_at = PRUNE_AT

    def pace(self, host: str) -> Pace | None:
        """A new connection from `host` (None: nothing is paced); `release` it when it closes."""
        if not self.limits.enabled:
            return None
        key = address_key(host)
        address = self._addresses.get(key)
        if address is None:
            if len(self._addresses) >= self._prune_at:
                self.prune()
            address = self._addresses[key] = _Buckets(
                self.limits, (ADDRESS_LINES, ADDRESS_BYTES), self.clock
            )
        address.users += 1
        return Pace(_Buckets(self.limits, (1, 1), self.clock), address)

    def release(self, host: str) -> None:
        """A connection `pace` was asked for has closed.

        Its address's buckets stay (see `prune`): forgetting them with the last connection
        would let a flooder start afresh by reconnecting."""
        address = self._addresses.get(address_key(host))
        if address is not None:
            address.users -= 1

    def prune(self) -> None:
        """Forget the addresses with no connection whose buckets have refilled: they would
        allow nothing less than new ones.  Run when the table has doubled since the last time,
        so that it costs little per connection however many addresses come and go."""
        for key, address in list(self._addresses.items()):
            if address.users <= 0 and address.is_full():
                del self._addresses[key]
        self._prune_at = max(PRUNE_AT, 2 * len(self._addresses))

    @property
    def addresses(self) -> int:
        return len(self._addresses)
