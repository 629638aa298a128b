"""A read with a deadline that costs nothing per read: one timer per connection, moved lazily.

`asyncio.wait_for(reader.read(n), timeout)` makes a task, a future and a timer for every read;
a busy member reads thousands of times a second, and an idle one holds all three for as long as
it is silent.  A `ReadWatch` instead keeps one timer at the time the connection's next deadline
was last known to fall.  When it fires it asks again (activity since may have moved the deadline
later: the timer just moves); only when the deadline has really passed does it interrupt the
read under way by cancelling the reading task, which `read` turns into `asyncio.TimeoutError`,
as `asyncio.timeout` does.  Bytes that arrive in the same moment stay in the reader's buffer for
the next read: none is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ReadWatch:
    """Times out a connection's reads when `due()` says the time to wait has run out.

    `due()` gives the seconds from now until the reader may stay silent no longer (0 or less:
    now; None: for ever).  It may only move later by itself; when it moves earlier, call `arm`.
    """

    __slots__ = ("_due", "_expired", "_loop", "_reading", "_task", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, due: Callable[[], float | None]) -> None:
        self._loop = loop
        self._due = due
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._reading = False
        self._expired = False

    def arm(self) -> None:
        """Set the timer to the deadline as it is now (at the start, and when it moved earlier)."""
        self.stop()
        delay = self._due()
        if delay is not None:
            self._timer = self._loop.call_later(max(0.0, delay), self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def read(self, reader: asyncio.StreamReader, size: int) -> bytes:
        """`reader.read(size)`, or `asyncio.TimeoutError` once the deadline has passed."""
        if self._expired:  # it passed while no read was waiting (between two reads)
            self._expired = False
            raise asyncio.TimeoutError
        if self._task is None:
            self._task = asyncio.current_task()
        self._reading = True
        try:
            return await reader.read(size)
        except asyncio.CancelledError:
            if not self._expired:  # cancelled from outside: not ours to swallow
                raise
            self._expired = False
            uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            raise asyncio.TimeoutError from None
        finally:
            self._reading = False

    def _check(self) -> None:
        self._timer = None
        delay = self._due()
        if delay is None:
            return
        if delay > 0:  # activity moved the deadline: wait for the new one
            self._timer = self._loop.call_later(delay, self._check)
            return
        self._expired = True
        if self._reading and self._task is not None:
            self._task.cancel()
