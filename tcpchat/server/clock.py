"""The server's clock."""

from __future__ import annotations

import time
from datetime import datetime, timezone


class MillisecondClock:
    """The time now, as one `datetime` object for everything within the same millisecond: the
    wire's times have milliseconds, and the protocol formats a time it has just formatted at
    no cost (`format_ts`), so a busy turn's messages and acks share one formatting."""

    __slots__ = ("_last", "_millisecond")

    def __init__(self) -> None:
        self._millisecond = -1
        self._last = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        millisecond = time.time_ns() // 1_000_000
        if millisecond != self._millisecond:
            self._millisecond = millisecond
            seconds, rest = divmod(millisecond, 1000)
            self._last = datetime.fromtimestamp(seconds, timezone.utc).replace(
                microsecond=rest * 1000
            )
        return self._last


now = MillisecondClock()  # the server's clock
