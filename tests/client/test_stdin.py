"""Standard input read line by line in a thread (tcpchat/stdin.py), over a real pipe."""

from __future__ import annotations

import asyncio
import os
import threading

from tcpchat.stdin import feed_lines


def lines_from(data: bytes, max_line: int | None = None) -> list[bytes | None]:
    """Everything `feed_lines` hands to the loop for `data` written into a pipe."""

    async def main() -> list[bytes | None]:
        got: list[bytes | None] = []
        done = asyncio.Event()

        def on_line(line: bytes | None) -> None:
            got.append(line)
            if line is None:
                done.set()

        read_end, write_end = os.pipe()
        with os.fdopen(read_end, "rb", buffering=0) as stream:
            reader = threading.Thread(
                target=feed_lines,
                args=(stream, asyncio.get_running_loop(), on_line),
                kwargs={"max_line": max_line},
                daemon=True,
            )
            reader.start()
            writer = threading.Thread(
                target=lambda: (os.write(write_end, data), os.close(write_end))
            )
            writer.start()
            await asyncio.wait_for(done.wait(), 10)
            writer.join(10)
            reader.join(10)
        return got

    return asyncio.run(main())


def test_lines_then_the_end() -> None:
    assert lines_from(b"/who\n/say hi\nlast") == [b"/who\n", b"/say hi\n", b"last", None]


def test_an_over_long_line_is_dropped_whole_and_the_next_ones_come() -> None:
    data = b"x" * 200_000 + b"\n/who\n" + b"y" * 50_000
    assert lines_from(data, max_line=1024) == [b"/who\n", None]


def test_without_a_cap_long_lines_are_kept() -> None:
    assert lines_from(b"z" * 100_000 + b"\n") == [b"z" * 100_000 + b"\n", None]
