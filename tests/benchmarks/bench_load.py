"""Load benchmark (not a test): members, fan-out throughput and server memory, on loopback.

Starts `tcpchat serve` as a child process, connects MEMBERS JSON members, lets SENDERS of them
send MESSAGES messages each as fast as the server takes them, and reports how long it took until
every member had every message, the fan-out rate (message deliveries a second) and the server's
resident memory (Linux).  Everything is bounded: a deadline ends the run whatever happens.

    python tests/benchmarks/bench_load.py --members 1000 --senders 10 --messages 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from tcpchat.bench import server_rss_kib as rss_kib


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_server_process(port: int, *options: str) -> subprocess.Popen[bytes]:
    """`tcpchat serve` on 127.0.0.1:`port` as a child process, once it accepts connections."""
    server = subprocess.Popen(
        # Every load connection comes from 127.0.0.1: the per-address limits are off here.
        [sys.executable, "-m", "tcpchat", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--quiet", "--max-per-address", "0", "--connect-rate", "0", *options],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            await asyncio.sleep(0.05)
    server.kill()
    raise RuntimeError("the server did not start")


class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self.messages = 0
        self.acks = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def join(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        hello = {"type": "hello", "name": self.name, "version": 1}
        self.writer.write(json.dumps(hello).encode() + b"\n")
        await self.reader.readline()  # banner
        welcome = json.loads(await self.reader.readline())
        assert welcome["type"] == "welcome", welcome

    async def count(self, expected_messages: int, expected_acks: int) -> None:
        assert self.reader is not None
        while self.messages < expected_messages or self.acks < expected_acks:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError(f"{self.name} was disconnected")
            self.messages += data.count(b'"type":"message"')
            self.acks += data.count(b'"type":"ack"')


async def run(members: int, senders: int, messages: int, deadline: float) -> dict[str, float]:
    port = free_port()
    server = await start_server_process(port, "--history", "0")
    try:
        rss_idle = rss_kib(server.pid)
        crowd = [Member(f"m{i}") for i in range(members)]
        started = time.perf_counter()
        for start in range(0, members, 100):
            await asyncio.gather(*(m.join(port) for m in crowd[start : start + 100]))
        joined = time.perf_counter() - started
        # Drain the join notices before timing, so the counts below are only messages.
        total = senders * messages
        counters = [
            asyncio.ensure_future(
                m.count(total - (messages if i < senders else 0), messages if i < senders else 0)
            )
            for i, m in enumerate(crowd)
        ]
        line = json.dumps({"type": "say", "text": "x" * 100}).encode() + b"\n"
        started = time.perf_counter()
        for m in crowd[:senders]:
            assert m.writer is not None
            m.writer.write(line * messages)
        await asyncio.wait_for(asyncio.gather(*counters), deadline)
        elapsed = time.perf_counter() - started
        rss_loaded = rss_kib(server.pid)
        for m in crowd:
            assert m.writer is not None
            m.writer.close()
        deliveries = total * (members - 1)
        return {
            "members": members,
            "join_seconds": round(joined, 2),
            "messages": total,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(total / elapsed, 1),
            "deliveries_per_second": round(deliveries / elapsed),
            "server_rss_idle_kib": rss_idle or -1,
            "server_rss_loaded_kib": rss_loaded or -1,
        }
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds before giving up")
    args = parser.parse_args()
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    except (ImportError, ValueError, OSError):
        pass
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(run(args.members, args.senders, args.messages, args.deadline))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
