"""Churn benchmark (not a test): many short connections ending every way; does anything leak?

Starts `tcpchat serve` as a child process and runs ROUNDS rounds of BATCH connections at once.
Each connection ends one way in turn: `bye` after a message, an abrupt close, a reset (RST), a
plain-mode `/quit`, garbage then close, or half a line then close.  After every round it reports
the server's open files and resident memory (Linux /proc); at the end, once every connection is
gone, the open files must be back where they started.

    python tests/benchmarks/bench_churn.py --rounds 20 --batch 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import time

from bench_load import free_port, rss_kib, start_server_process


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def one(port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # banner
    way = n % 6
    name = f"c{n}"
    if way == 0:
        writer.write(json.dumps({"type": "hello", "name": name, "version": 1}).encode() + b"\n")
        writer.write(json.dumps({"type": "say", "text": "hi", "id": "1"}).encode() + b"\n")
        writer.write(b'{"type":"bye"}\n')
    elif way == 1:
        writer.write(json.dumps({"type": "hello", "name": name, "version": 1}).encode() + b"\n")
    elif way == 2:
        writer.write(json.dumps({"type": "hello", "name": name, "version": 1}).encode() + b"\n")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif way == 3:
        writer.write(f"{name}\nhello\n/quit\n".encode())
    elif way == 4:
        writer.write(os.urandom(3000) + b"\n\xff\xfe\n{not json}\n")
    else:
        writer.write(b'{"type":"hello","name":"half')  # and never the rest
    await writer.drain()
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def run(rounds: int, batch: int) -> None:
    port = free_port()
    server = await start_server_process(port, "--history", "10")
    try:
        baseline = open_files(server.pid)
        print(f"start: files {baseline}, rss {rss_kib(server.pid)} KiB")
        started = time.perf_counter()
        for round_number in range(rounds):
            base = round_number * batch
            await asyncio.wait_for(
                asyncio.gather(
                    *(one(port, base + i) for i in range(batch)), return_exceptions=True
                ),
                60,
            )
            print(
                f"round {round_number + 1}: files {open_files(server.pid)}, "
                f"rss {rss_kib(server.pid)} KiB"
            )
        elapsed = time.perf_counter() - started
        print(
            f"{rounds * batch} connections in {elapsed:.1f} s "
            f"({rounds * batch / elapsed:.0f} a second)"
        )
        deadline = time.monotonic() + 30
        while open_files(server.pid) > baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print(
            f"settled: files {open_files(server.pid)} (started with {baseline}), "
            f"rss {rss_kib(server.pid)} KiB"
        )
        # A last member that joins and chats proves the server still serves.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b'{"type":"hello","name":"last","version":1}\n{"type":"say","text":"ok"}\n')
        welcome = json.loads(await asyncio.wait_for(reader.readline(), 10))
        ack = json.loads(await asyncio.wait_for(reader.readline(), 10))
        print(f"after: welcome members={welcome['members']}, ack seq={ack['seq']}")
        writer.close()
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.batch))


if __name__ == "__main__":
    main()
