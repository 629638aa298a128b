"""Connections refused: whether each is told why, and what the console and the log file say.

A refused connection gets one line saying why, unless too many are being told at once (a flood:
telling each would be its win).  Over TLS the line costs a handshake, so an address gets one
such handshake a minute.  The log shows the first refusal of an address in a minute; the rest
go to the debug log one by one and are counted, and a line a minute (and one when the server
stops) gives the counts: every refusal is accounted for, yet a flood of refusals is not a flood
of log lines, nor fills a disk.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from tcpchat.defaults import SECONDS
from tcpchat.server.guard import OncePerAddress, address_key
from tcpchat.words import counted

EVERY = 60 * SECONDS
MAX_TELLING = 256  # refused connections being told why at once; past that, cut without a word
MAX_TELLING_OVER_TLS = 16  # the same over TLS, where each costs a handshake
RECENT = 50  # refusals the operator's page lists
MAX_COUNTED = (
    1024  # addresses whose unshown refusals are counted each; the rest are counted together
)

log = logging.getLogger("tcpchat.server")


@dataclass
class _Unshown:
    """Refusals of one address not logged one by one since the last summary."""

    count: int = 0
    last: str = ""  # the latest one's reason


class Refusals:
    """The server's refused connections: how many are being told why, and the log's lines."""

    def __init__(self) -> None:
        self.telling = 0  # counted from the door until the connection ends
        self._told_over_tls = OncePerAddress(EVERY)
        self._shown = OncePerAddress(EVERY)
        self._unshown: dict[str, _Unshown] = {}  # by address key
        self._cut = 0  # refused without a word since the last summary
        self._summary: asyncio.TimerHandle | None = None
        # The newest refusals told, for the operator's page: (when, peer, why), oldest first.
        self.recent: collections.deque[tuple[datetime, str, str]] = collections.deque(maxlen=RECENT)

    def may_tell(self, host: str, *, tls: bool) -> bool:
        """Whether a connection refused from `host` is told why rather than cut (and counted)."""
        if self.telling < (MAX_TELLING_OVER_TLS if tls else MAX_TELLING) and (
            not tls or self._told_over_tls.allow(host)
        ):
            return True
        self._cut += 1
        self._summarise_later()
        return False

    def note(self, host: str, peer: str, refusal: str) -> None:
        """Log that `peer` was refused: a line for the first of its address in a minute, a count
        for the others."""
        self.recent.append((datetime.now(timezone.utc), peer, refusal))
        if self._shown.allow(host):
            log.info("refused %s: %s", peer, refusal)
            return
        log.debug("refused %s: %s", peer, refusal)
        key = address_key(host)
        if key not in self._unshown and len(self._unshown) >= MAX_COUNTED:
            key = ""  # many addresses: the rest are counted together
        unshown = self._unshown.setdefault(key, _Unshown())
        unshown.count += 1
        unshown.last = refusal
        self._summarise_later()

    def summarise(self) -> None:
        """Log the refusals counted but not logged one by one (the server calls this as it stops)."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        for key, unshown in self._unshown.items():
            where = f"from {key}" if key else "from other addresses"
            log.info(
                "refused %s %s, not logged one by one (the last: %s)",
                counted(unshown.count, "more connection"),
                where,
                unshown.last,
            )
        if self._cut:
            log.info(
                "refused %s without telling them why (a flood of refused connections)",
                counted(self._cut, "connection"),
            )
        self._unshown.clear()
        self._cut = 0

    def _summarise_later(self) -> None:
        """A summary in a minute, unless one is already due."""
        if self._summary is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test of this class alone): summarise() when asked
            return
        self._summary = loop.call_later(EVERY, self.summarise)
