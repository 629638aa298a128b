"""Connections refused at the door: whether each is told why, and what the console says.

A refused connection gets one line saying why, unless too many are being told at once (a flood:
telling each would be its win).  Over TLS the line costs a handshake, so an address gets one
such handshake a minute.  The console shows one refusal an address a minute; the rest go to the
debug log, so that a flood of refusals is not a flood of log lines, nor fills a disk.
"""

from __future__ import annotations

import collections
import logging
from datetime import datetime, timezone

from tcpchat.defaults import SECONDS
from tcpchat.server.guard import OncePerAddress

EVERY = 60 * SECONDS
MAX_TELLING = 256  # refused connections being told why at once; past that, cut without a word
MAX_TELLING_OVER_TLS = 16  # the same over TLS, where each costs a handshake
RECENT = 50  # refusals the operator's page lists

log = logging.getLogger("tcpchat.server")


class Refusals:
    """The server's refused connections: how many are being told why, and the console's lines."""

    def __init__(self) -> None:
        self.telling = 0  # counted from the door until the connection ends
        self._told_over_tls = OncePerAddress(EVERY)
        self._shown = OncePerAddress(EVERY)
        # The newest refusals told, for the operator's page: (when, peer, why), oldest first.
        self.recent: collections.deque[tuple[datetime, str, str]] = collections.deque(maxlen=RECENT)

    def may_tell(self, host: str, *, tls: bool) -> bool:
        """Whether a connection refused from `host` is told why rather than cut."""
        if self.telling >= (MAX_TELLING_OVER_TLS if tls else MAX_TELLING):
            return False
        return not tls or self._told_over_tls.allow(host)

    def note(self, host: str, peer: str, refusal: str) -> None:
        """Say on the console that `peer` was refused, once an address a minute."""
        self.recent.append((datetime.now(timezone.utc), peer, refusal))
        if self._shown.allow(host):
            log.info(
                "refused %s: %s (more from this address within a minute are not shown)",
                peer,
                refusal,
            )
        else:
            log.debug("refused %s: %s", peer, refusal)
