"""Which processes of the cluster are alive: each holds a lease in Redis that it renews, and a
process whose lease ran out is dead to the others (they then free its members' names).

Leases are timed by Redis's own clock (`TIME` inside the scripts), so processes on machines
whose clocks disagree still agree on who is alive.
"""

from __future__ import annotations

import redis.asyncio as redis

from tcpchat.defaults import SECONDS
from tcpchat.server.cluster.keys import LEASES
from tcpchat.server.cluster.shared_room import ask

# A lease lasts this long and is renewed three times within it: a process stopped by SIGKILL is
# found dead at most LEASE after its last renewal, plus the time until someone next looks.
LEASE = 3 * SECONDS
RENEW_EVERY = LEASE / 3

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"
# KEYS: leases.  ARGV: process, lease in ms.  Returns how many processes are alive, and 1 if
# the process's lease had not run out (0: it had, or there was none).
RENEW = f"""
{_NOW_MS}
local was = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {{redis.call('ZCOUNT', KEYS[1], now, '+inf'), was >= now and 1 or 0}}
"""
# KEYS: leases.  Returns the processes whose lease has ended.
EXPIRED = f"""
{_NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
"""


class Leases:
    """This process's lease, and the others' as far as it needs to know them."""

    def __init__(self, client: redis.Redis, process: str, lease: float = LEASE) -> None:
        self.client = client
        self.process = process
        self.lease_ms = int(lease * 1000)
        self._renew = client.register_script(RENEW)
        self._expired = client.register_script(EXPIRED)

    async def renew(self) -> tuple[int, bool]:
        """Extend our lease; return how many processes are alive (us included), and whether
        the lease was still ours (False: the others may have taken this process for dead)."""
        alive, kept = await ask(
            "renew this process's lease",
            self._renew(keys=[LEASES], args=[self.process, self.lease_ms]),
        )
        return int(alive), bool(kept)

    async def expired(self) -> list[str]:
        """The processes whose lease has ended (not yet forgotten)."""
        found = await ask("read the leases", self._expired(keys=[LEASES]))
        return [str(process) for process in found]

    async def forget(self, process: str) -> None:
        """A dead process's names are freed: it need not be looked at again."""
        await ask("forget a stopped process", self.client.zrem(LEASES, process))

    async def release(self) -> None:
        """End our own lease (a clean stop: the others need not wait for it to run out)."""
        await ask("end this process's lease", self.client.zrem(LEASES, self.process))
