"""A read with a deadline (`ReadWatch`), on a real loopback connection."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tcpchat.server.watch import ReadWatch

pytestmark = pytest.mark.timeout(10)


@asynccontextmanager
async def connection() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """(the server side's reader, the client side's writer) of one loopback connection."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await accepted.get()
    try:
        yield reader, client
    finally:
        client.close()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


class Deadline:
    """A deadline the test moves: `due()` counts down to `at` on the loop's clock."""

    def __init__(self, seconds: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.at = None if seconds is None else self.loop.time() + seconds
        self.asked = 0

    def due(self) -> float | None:
        self.asked += 1
        return None if self.at is None else self.at - self.loop.time()


def test_a_silent_reader_times_out_at_its_deadline() -> None:
    async def main() -> None:
        async with connection() as (reader, _):
            deadline = Deadline(0.05)
            watch = ReadWatch(asyncio.get_running_loop(), deadline.due)
            watch.arm()
            with pytest.raises(asyncio.TimeoutError):
                await watch.read(reader, 100)
            assert deadline.at is not None and asyncio.get_running_loop().time() >= deadline.at

    asyncio.run(main())


def test_reads_that_keep_coming_are_never_timed_out_and_arm_no_timer() -> None:
    async def main() -> None:
        async with connection() as (reader, writer):
            deadline = Deadline(0.2)
            watch = ReadWatch(asyncio.get_running_loop(), deadline.due)
            watch.arm()
            for _ in range(200):
                writer.write(b"x")
                assert await watch.read(reader, 100) == b"x"
            # The deadline was asked once when armed, not once per read.
            assert deadline.asked == 1
            watch.stop()

    asyncio.run(main())


def test_a_deadline_moved_later_moves_the_timer_instead_of_timing_out() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with connection() as (reader, writer):
            deadline = Deadline(0.05)
            watch = ReadWatch(loop, deadline.due)
            watch.arm()
            deadline.at = loop.time() + 0.3  # activity: the reader may now stay silent longer
            reading = asyncio.ensure_future(watch.read(reader, 100))
            while deadline.asked < 2:  # the timer fires at the first deadline, asks again...
                await asyncio.sleep(0.01)
            assert not reading.done()  # ...and moves instead of timing out
            writer.write(b"late but in time")
            assert await reading == b"late but in time"
            watch.stop()

    asyncio.run(main())


def test_bytes_arriving_as_the_deadline_passes_are_read_next_and_not_lost() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()  # fed as its connection's protocol feeds it
        deadline = Deadline(None)
        watch = ReadWatch(loop, deadline.due)
        reading = asyncio.ensure_future(watch.read(reader, 100))
        await asyncio.sleep(0)  # the read waits
        deadline.at = loop.time()
        watch.arm()  # the deadline is checked in the loop's next turn...
        await asyncio.sleep(0)
        reader.feed_data(b"hello")  # ...just after the bytes woke the read, before it ran
        with pytest.raises(asyncio.TimeoutError):
            await reading
        assert await watch.read(reader, 100) == b"hello"

    asyncio.run(main())


def test_a_cancellation_from_outside_is_not_taken_for_a_timeout() -> None:
    async def main() -> None:
        async with connection() as (reader, _):
            watch = ReadWatch(asyncio.get_running_loop(), Deadline(60).due)
            watch.arm()
            reading = asyncio.ensure_future(watch.read(reader, 100))
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            watch.stop()

    asyncio.run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is Python 3.11's")
def test_a_timed_out_read_leaves_its_task_uncancelled() -> None:
    """Else a later `asyncio.timeout` in the same task would take its expiry for a cancellation."""

    async def main() -> None:
        async with connection() as (reader, _):
            watch = ReadWatch(asyncio.get_running_loop(), Deadline(0.01).due)
            watch.arm()
            with pytest.raises(asyncio.TimeoutError):
                await watch.read(reader, 100)
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):  # type: ignore[attr-defined]
                    await reader.read(100)

    asyncio.run(main())


def test_a_deadline_passed_between_two_reads_times_out_the_next() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with connection() as (reader, writer):
            deadline = Deadline(0.02)
            watch = ReadWatch(loop, deadline.due)
            watch.arm()
            writer.write(b"x")
            assert await watch.read(reader, 100) == b"x"
            # Busy elsewhere (no read waiting) while the deadline passes.
            while deadline.asked < 2:
                await asyncio.sleep(0.005)
            with pytest.raises(asyncio.TimeoutError):
                await watch.read(reader, 100)

    asyncio.run(main())
