"""Who may connect: per-address limits, wrong-password lockouts and bans.

No I/O and no event loop: the server asks `admit` when a connection arrives and reports what
happened; the clock is passed in, so the tests can move time.  An "address" is an IPv4 address,
or an IPv6 /64 network: one IPv6 host usually holds a whole /64, so counting single IPv6
addresses would let one machine pass every limit.
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tcpchat.words import counted

MINUTE = 60.0
FAILURE_WINDOW = 10 * MINUTE  # wrong passwords older than this are forgotten
PRUNE_AT = 4096  # per-address records kept before idle ones are swept out
TRUSTED_KEPT = 4096  # addresses that gave the right password, newest kept


@dataclass(frozen=True)
class GuardLimits:
    """None turns a limit off."""

    max_per_address: int | None = 32
    connect_rate: int | None = 60  # new connections a minute, in bursts of as many
    auth_failures: int = 5  # wrong passwords allowed in FAILURE_WINDOW before a lockout
    auth_lockout: float = MINUTE
    # Wrong passwords a minute from all addresses together (in bursts of as many): past that,
    # only addresses that gave the right password before may try one (None: no such limit).
    global_auth_failures: int | None = 30


@functools.lru_cache(maxsize=4096)  # every connection asks; parsing an address is not cheap
def address_key(host: str) -> str:
    """The unit limits and bans apply to: an IPv4 address (also when IPv4-mapped), an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # not an IP address (a Unix socket path, a test's name): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip.is_loopback:
            return str(ip)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Record:
    open: int = 0
    tokens: float = 0.0
    refilled: float = 0.0
    failures: list[float] | None = None
    locked_until: float = 0.0


class AddressGuard:
    """Counts connections per address and answers whether one more may come in."""

    def __init__(self, limits: GuardLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._prune_at = PRUNE_AT
        self._bans: dict[str, float | None] = {}  # key -> until (clock time), None: until restart
        self._global_failures = _Record(tokens=float(limits.global_auth_failures or 0))
        self._global_failures.refilled = clock()
        self._trusted: collections.OrderedDict[str, None] = collections.OrderedDict()

    # --- connections -------------------------------------------------------------------------

    def admit(self, host: str) -> str | None:
        """Count a new connection from `host`; or, when it may not come in, say why (a sentence).

        An admitted connection must be `release`d when it closes.
        """
        key = address_key(host)
        now = self.clock()
        ban = self.banned_for(key, now)
        if ban is not None:
            return ban
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self._prune_at:
                self._prune(now)
            record = self._records[key] = _Record(tokens=self._rate_burst(), refilled=now)
        locked = self.locked_out(host)
        if locked is not None:
            return locked
        limit = self.limits.max_per_address
        if limit is not None and record.open >= limit:
            return f"Too many connections from your address (at most {limit}); close one first."
        if self.limits.connect_rate is not None:
            self._refill(record, now)
            if record.tokens < 1:
                wait = math.ceil((1 - record.tokens) * MINUTE / self.limits.connect_rate)
                return (
                    "Too many new connections from your address; try again in "
                    f"{counted(wait, 'second')}."
                )
            record.tokens -= 1
        record.open += 1
        return None

    def release(self, host: str) -> None:
        """A connection `admit` let in has closed."""
        record = self._records.get(address_key(host))
        if record is not None and record.open > 0:
            record.open -= 1

    def open_from(self, host: str) -> int:
        record = self._records.get(address_key(host))
        return record.open if record else 0

    # --- passwords ---------------------------------------------------------------------------

    def locked_out(self, host: str) -> str | None:
        """Why `host` may not try a password now (a connection opened before the lockout)."""
        record = self._records.get(address_key(host))
        now = self.clock()
        if record is None or record.locked_until <= now:
            return None
        wait = int(record.locked_until - now) + 1
        return f"Too many wrong passwords from your address; try again in {wait} seconds."

    def password_refused(self, host: str) -> str | None:
        """Why `host` may not try a password now: its own lockout, or (for an address that never
        gave the right one) too many wrong passwords from everywhere lately."""
        locked = self.locked_out(host)
        if locked is not None or address_key(host) in self._trusted:
            return locked
        rate = self.limits.global_auth_failures
        if rate is None:
            return None
        bucket = self._global_failures
        _refill_tokens(bucket, self.clock(), rate)
        if bucket.tokens >= 1:
            return None
        wait = math.ceil((1 - bucket.tokens) * MINUTE / rate)
        return (
            "Too many wrong passwords have been tried on this server lately; "
            f"try again in {counted(wait, 'second')}."
        )

    def password_accepted(self, host: str) -> None:
        """`host` gave the right password: it may go on trying while others are guessing."""
        key = address_key(host)
        self._trusted[key] = None
        self._trusted.move_to_end(key)
        if len(self._trusted) > TRUSTED_KEPT:
            self._trusted.popitem(last=False)

    def password_failed(self, host: str) -> None:
        """One wrong password from `host`; past the allowance the address is locked out a while."""
        key = address_key(host)
        now = self.clock()
        rate = self.limits.global_auth_failures
        if rate is not None:
            _refill_tokens(self._global_failures, now, rate)
            self._global_failures.tokens -= 1
        record = self._records.setdefault(key, _Record(tokens=self._rate_burst(), refilled=now))
        recent = [t for t in record.failures or [] if now - t < FAILURE_WINDOW]
        recent.append(now)
        record.failures = recent
        if len(recent) >= self.limits.auth_failures:
            record.locked_until = now + self.limits.auth_lockout

    # --- bans --------------------------------------------------------------------------------

    def ban(self, host: str, seconds: float | None) -> str:
        """Refuse `host`'s address for `seconds` (None: until the server restarts); its key."""
        key = address_key(host)
        self._bans[key] = None if seconds is None else self.clock() + seconds
        return key

    def unban(self, host: str) -> bool:
        return self._bans.pop(address_key(host), False) is not False

    def bans(self) -> dict[str, float | None]:
        """Active bans: key -> seconds left (None: until restart)."""
        now = self.clock()
        return {
            key: None if until is None else until - now
            for key, until in list(self._bans.items())
            if self.banned_for(key, now) is not None
        }

    def banned_for(self, key: str, now: float) -> str | None:
        if key not in self._bans:
            return None
        until = self._bans[key]
        if until is None:
            return "Your address is banned from this server."
        if until <= now:
            del self._bans[key]
            return None
        minutes = max(1, round((until - now) / MINUTE))
        return f"Your address is banned from this server for {counted(minutes, 'more minute')}."

    # --- upkeep ------------------------------------------------------------------------------

    def _rate_burst(self) -> float:
        return float(self.limits.connect_rate or 0)

    def _refill(self, record: _Record, now: float) -> None:
        _refill_tokens(record, now, self.limits.connect_rate or 0)

    def _prune(self, now: float) -> None:
        """Forget addresses with nothing open, a full allowance, and no lockout or recent failure:
        remembering them would tell `admit` nothing, and a scan from many addresses must not grow
        this table without bound."""
        for key, record in list(self._records.items()):
            if record.open or record.locked_until > now:
                continue
            if record.failures and now - record.failures[-1] < FAILURE_WINDOW:
                continue
            if self.limits.connect_rate is not None:
                self._refill(record, now)
                if record.tokens < self.limits.connect_rate:
                    continue
            del self._records[key]
        # Not again before the table has doubled: with thousands of addresses that cannot be
        # forgotten yet (connected, or just arrived), a sweep on every new one would be quadratic.
        self._prune_at = max(PRUNE_AT, 2 * len(self._records))


def _refill_tokens(record: _Record, now: float, per_minute: int) -> None:
    """A token bucket of `per_minute` a minute, in bursts of as many."""
    record.tokens = min(
        float(per_minute), record.tokens + (now - record.refilled) * per_minute / MINUTE
    )
    record.refilled = now


Holder = TypeVar("Holder", bound=Hashable)


class HandshakeSlots(Generic[Holder]):
    """TLS handshakes in progress: at most `capacity` at once, at most `per_address` from one
    address, shared so that sockets left idle cannot keep real clients out.

    A newcomer always gets a slot.  When its address already holds `per_address`, it takes the
    slot of that address's oldest handshake; when every slot is taken, it takes the oldest slot
    of the address that holds the most.  A real client finishes its handshake in milliseconds,
    so the ones pushed out are those that sat idle longest at the greediest address.
    """

    def __init__(self, capacity: int, per_address: int) -> None:
        self.capacity = capacity
        self.per_address = per_address
        self._address_of: dict[Holder, str] = {}
        # Per address, its holders oldest first (dicts keep insertion order).
        self._by_address: dict[str, dict[Holder, None]] = {}

    def __len__(self) -> int:
        return len(self._address_of)

    def enter(self, host: str, holder: Holder) -> Holder | None:
        """Give `holder` a slot for a handshake from `host`; return the holder it displaced."""
        key = address_key(host)
        mine = self._by_address.get(key, {})
        evicted: Holder | None = None
        if len(mine) >= self.per_address:
            evicted = next(iter(mine))
        elif len(self._address_of) >= self.capacity:
            busiest = max(self._by_address.values(), key=lambda holders: len(holders))
            evicted = next(iter(busiest))
        if evicted is not None:
            self.leave(evicted)
        self._by_address.setdefault(key, {})[holder] = None
        self._address_of[holder] = key
        return evicted

    def leave(self, holder: Holder) -> None:
        """`holder`'s handshake is over (done, failed or displaced); nothing if it held no slot."""
        key = self._address_of.pop(holder, None)
        if key is None:
            return
        holders = self._by_address[key]
        del holders[holder]
        if not holders:
            del self._by_address[key]

    def holders(self) -> list[Holder]:
        return list(self._address_of)


class OncePerAddress:
    """Whether something may happen for an address now: at most once per `every` seconds.

    For what a flood of connections must not multiply (a log line, a TLS handshake to say why
    a connection is refused).  At most `MAX_REMEMBERED` addresses are remembered, so that a scan
    from many cannot grow it; when full it starts again, letting each through once more.
    """

    MAX_REMEMBERED = 1024

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[str, float] = {}

    def allow(self, host: str) -> bool:
        key = address_key(host)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        if len(self._last) >= self.MAX_REMEMBERED:
            self._last.clear()
        self._last[key] = now
        return True
