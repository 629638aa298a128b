"""The console's lines about connections refused at the door, kept to one an address a minute."""

from __future__ import annotations

import logging
import time

from tcpchat.defaults import SECONDS
from tcpchat.server.guard import address_key

REFUSAL_LOG_EVERY = 60 * SECONDS

log = logging.getLogger("tcpchat.server")


class RefusalLog:
    """One console line per address and minute; the rest at debug level (a flood of refusals
    must not become a flood of log lines, nor fill a disk)."""

    def __init__(self) -> None:
        self._logged: dict[str, float] = {}

    def note(self, host: str, peer: str, refusal: str) -> None:
        key = address_key(host)
        now = time.monotonic()
        if now - self._logged.get(key, -REFUSAL_LOG_EVERY) >= REFUSAL_LOG_EVERY:
            if len(self._logged) >= 1024:
                self._logged.clear()
            self._logged[key] = now
            log.info(
                "refused %s: %s (more from this address within a minute are not shown)",
                peer,
                refusal,
            )
        else:
            log.debug("refused %s: %s", peer, refusal)
