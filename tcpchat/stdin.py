"""Standard input, line by line, read in a thread and handed to the event loop.

A thread, because a blocking read works on every OS (Windows has no asyncio pipes for a console).
Plain `os.read` on the file descriptor, not the buffered file: a daemon thread blocked inside a
buffered read holds its lock, and Python aborts at exit when it finds it held.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 65536
BACKGROUND_RETRY = 1.0  # seconds between tries while a POSIX job is in the background


def feed_lines(
    stream: BinaryIO,
    loop: asyncio.AbstractEventLoop,
    on_line: Callable[[bytes | None], object],
    *,
    wait_in_background: bool = False,
    max_line: int | None = None,
) -> None:
    """Call `on_line(line)` in `loop` for each line of `stream` (with its `\\n`), then
    `on_line(None)` at the end.  Blocks: run it in a daemon thread (`start_feeding`).

    With `max_line`, a line longer than that is dropped whole as it arrives (so `< /dev/zero`
    cannot fill memory).

    With `wait_in_background`, a terminal read refused because the job is in the background
    (EIO, with SIGTTIN ignored) is tried again each second instead of ending the input.
    """
    try:
        descriptor: int | None = stream.fileno()
    except (OSError, ValueError, AttributeError):
        descriptor = None  # an in-memory stream (tests): nothing blocks, iterate it

    def hand_over(line: bytes | None) -> None:
        loop.call_soon_threadsafe(on_line, line)

    try:
        if descriptor is None:
            for raw in stream:
                hand_over(raw)
        else:
            pending = b""
            skipping = False  # inside a line over max_line
            while chunk := _read(descriptor, wait_in_background):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if skipping:
                        skipping = False  # the end of the over-long line
                        continue
                    hand_over(line + b"\n")
                if max_line is not None and len(pending) > max_line:
                    pending, skipping = b"", True
            if pending and not skipping:
                hand_over(pending)
    except (OSError, ValueError):
        pass
    finally:
        try:
            hand_over(None)
        except RuntimeError:
            pass  # the loop has already ended


def _read(descriptor: int, wait_in_background: bool) -> bytes:
    while True:
        try:
            return os.read(descriptor, CHUNK)
        except OSError as exc:
            if not (wait_in_background and exc.errno == errno.EIO):
                raise
        time.sleep(BACKGROUND_RETRY)  # `tcpchat serve &`: wait until `fg`


def start_feeding(
    stream: BinaryIO,
    loop: asyncio.AbstractEventLoop,
    on_line: Callable[[bytes | None], object],
    *,
    wait_in_background: bool = False,
    max_line: int | None = None,
) -> threading.Thread:
    """`feed_lines` in a daemon thread (it may stay blocked in a read until the process ends)."""
    if wait_in_background and hasattr(signal, "SIGTTIN"):
        # A background job reading its terminal is stopped by SIGTTIN (and, with `stty
        # tostop`, writing to it by SIGTTOU), and the whole server with it; ignored, the read
        # fails with EIO instead and is tried again later, and a write fails and is dropped.
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    thread = threading.Thread(
        target=feed_lines,
        args=(stream, loop, on_line),
        kwargs={"wait_in_background": wait_in_background, "max_line": max_line},
        name="tcpchat-stdin",
        daemon=True,
    )
    thread.start()
    return thread
