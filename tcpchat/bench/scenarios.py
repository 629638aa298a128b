"""The benchmark scenarios: load a chat server and measure it, in the manner of redis-benchmark.

Every client runs in this one process on asyncio `Protocol`s (no task per client, no per-line
awaits), so one core of load generator can keep a server busy.  Each message carries who sent
it, its number, and the moment it was sent (this process's monotonic clock), so each receiver
measures latency and notices loss, duplicates and reordering on its own; tcpchat's `seq` is
checked too.  The same scenarios speak IRC (`--protocol irc`) so that tcpchat can be measured
beside ngircd or ergo with the same tool.

Scenarios: `fanout` (R receivers, one sender, M messages, at most W on their way),
`many` (N members each sending K), `capacity` (C idle members: join time and memory per member),
`churn` (rounds of join-and-leave).  Everything is bounded by counts and by `--timeout`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tcpchat.bench.clients import BenchClient, Tally
from tcpchat.bench.dialects import JOIN_BATCH, BenchError, Dialect, message_text
from tcpchat.bench.report import (
    Report,
    percentiles,
    server_cpu_seconds,
    server_rss_kib,
    total,
)

# --- the run -----------------------------------------------------------------------------------


@dataclass
class Settings:
    host: str
    # Several ports are several server processes sharing one room (`serve --cluster`):
    # member n connects to ports[n % len(ports)], so a scenario's first member (fanout's sender)
    # is on the first port and the rest are spread evenly.
    ports: Sequence[int]
    dialect: Dialect
    timeout: float = 120.0
    # Every process that serves (the servers, and a cluster's Redis): CPU and memory are summed.
    server_pids: Sequence[int] = ()
    progress: Callable[[int, int], None] | None = None  # (done, total)
    # Members are browsers: a WebSocket to `ws://host:port/ws` (`tcpchat serve --web`).
    websocket: bool = False

    def port_of(self, member: int) -> int:
        return self.ports[member % len(self.ports)]

    def new_client(self, nick: str, tally: Tally, port: int) -> BenchClient:
        if not self.websocket:
            return BenchClient(nick, self.dialect, tally)
        from tcpchat.bench.websocket import WebSocketBenchClient  # needs tcpchat[web]

        host = f"[{self.host}]" if ":" in self.host else self.host
        return WebSocketBenchClient(nick, self.dialect, tally, f"ws://{host}:{port}/ws")


class Bench:
    """Clients, their tally, and the server's numbers around the measured part."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tally = Tally()
        self.clients: list[BenchClient] = []
        self.run_id = secrets.token_hex(2)[:3]  # names of concurrent runs do not collide

    async def connect(self, count: int, first: int = 0) -> float:
        """Connect and join `count` more clients, JOIN_BATCH at a time; the seconds it took."""
        started = time.perf_counter()
        for start in range(first, first + count, JOIN_BATCH):
            batch = []
            for n in range(start, min(first + count, start + JOIN_BATCH)):
                port = self.settings.port_of(n)
                client = self.settings.new_client(f"b{self.run_id}{n}", self.tally, port)
                batch.append((client, port))
                self.clients.append(client)
            # Every attempt ends before a refusal is raised, so that none is left half open.
            opened = await asyncio.gather(
                *(self._open(client, port) for client, port in batch), return_exceptions=True
            )
            for outcome in opened:
                if isinstance(outcome, BaseException):
                    raise outcome
            await asyncio.gather(*(client.joined for client, _ in batch))
        return time.perf_counter() - started

    async def _open(self, client: BenchClient, port: int) -> None:
        host = self.settings.host
        try:
            await asyncio.get_running_loop().create_connection(lambda: client, host, port)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)  # not asyncio's wording
            raise BenchError(f"cannot connect to {host} port {port}: {why}.") from None

    def close_all(self) -> None:
        for client in self.clients:
            client.close()

    async def wait_for(self, holds: Callable[[], bool], deadline: float, total: int) -> bool:
        """Until `holds()`, reporting progress; False if `deadline` (monotonic) passed first."""
        while not holds():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.tally.changed.clear()
            try:
                await asyncio.wait_for(self.tally.changed.wait(), min(remaining, 0.2))
            except asyncio.TimeoutError:
                pass
            if self.settings.progress is not None:
                self.settings.progress(self.tally.deliveries, total)
        if self.settings.progress is not None:
            self.settings.progress(self.tally.deliveries, total)
        return True

    def cpu(self) -> float | None:
        return total(self.settings.server_pids, server_cpu_seconds)

    def rss(self) -> int | None:
        return total(self.settings.server_pids, server_rss_kib)

    def report(self, scenario: str, clients: int, **values: Any) -> Report:
        ports = list(self.settings.ports)
        where = f"{self.settings.host}:{','.join(map(str, ports))}"
        return Report(
            scenario,
            self.settings.dialect.name,
            where,
            clients,
            ports=ports,
            server_pids=list(self.settings.server_pids),
            **values,
        )

    def finish(self, report: Report, cpu_before: float | None, elapsed: float) -> Report:
        tally = self.tally
        report.seconds = round(elapsed, 3)
        report.deliveries = tally.deliveries
        report.deliveries_per_second = round(tally.deliveries / elapsed) if elapsed else 0.0
        report.latency_ms = {k: round(v, 2) for k, v in percentiles(tally.latencies_ns).items()}
        # Missing at the end, or skipped in a sender's numbering (whichever says more).
        report.lost = max(0, report.expected_deliveries - tally.deliveries, tally.lost)
        report.reordered, report.duplicates = tally.reordered, tally.duplicates
        report.seq_gaps = tally.seq_gaps
        report.acknowledged = tally.acknowledged
        cpu_after = self.cpu()
        if cpu_before is not None and cpu_after is not None:
            report.server_cpu_seconds = round(cpu_after - cpu_before, 3)
            if report.server_cpu_seconds > 0:
                report.deliveries_per_cpu_second = round(
                    tally.deliveries / report.server_cpu_seconds
                )
        report.server_rss_kib = self.rss()
        return report


async def _send_windowed(
    sender: BenchClient,
    sender_number: int,
    messages: int,
    size: int,
    window: int,
    probe: BenchClient,
    deadline: float,
) -> None:
    """Send `messages`, never more than `window` ahead of what `probe` has received of them."""
    for number in range(messages):
        while number - probe.from_sender.get(sender_number, 0) >= window:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or probe.closed.done():
                return
            probe.tally.changed.clear()
            try:
                await asyncio.wait_for(probe.tally.changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        sender.say(message_text(sender_number, number, size))


async def fanout(
    settings: Settings, receivers: int, messages: int, size: int, window: int
) -> Report:
    """One sender, paced by the first receiver, to `receivers` members."""

    def plan(clients: list[BenchClient]) -> list[tuple[BenchClient, int, BenchClient]]:
        return [(clients[0], 0, clients[1])]

    expected = receivers * messages
    return await _send_and_count(
        settings, "fanout", receivers + 1, receivers, plan, messages, size, window, expected
    )


async def many(settings: Settings, members: int, each: int, size: int, window: int) -> Report:
    """Every member sends `each`; each is paced by another member (the first, or the second)."""
    if members < 2:
        raise BenchError("many needs at least 2 members.")

    def plan(clients: list[BenchClient]) -> list[tuple[BenchClient, int, BenchClient]]:
        return [(c, n, clients[1] if n == 0 else clients[0]) for n, c in enumerate(clients)]

    expected = members * each * (members - 1)
    return await _send_and_count(
        settings, "many", members, members, plan, each, size, window, expected
    )


async def _send_and_count(
    settings: Settings,
    scenario: str,
    connections: int,
    shown: int,
    plan: Callable[[list[BenchClient]], list[tuple[BenchClient, int, BenchClient]]],
    messages: int,
    size: int,
    window: int,
    expected: int,
) -> Report:
    """Join `connections` clients; each (sender, its number, the client that paces it) of
    `plan` sends `messages`; count deliveries until `expected` arrived or the time is up."""
    bench = Bench(settings)
    deadline = time.monotonic() + settings.timeout
    try:
        join_seconds = await asyncio.wait_for(bench.connect(connections), settings.timeout)
        cpu_before = bench.cpu()
        started = time.perf_counter()
        senders = [
            asyncio.ensure_future(
                _send_windowed(sender, number, messages, size, window, probe, deadline)
            )
            for sender, number, probe in plan(bench.clients)
        ]
        complete = await bench.wait_for(
            lambda: bench.tally.deliveries >= expected, deadline, expected
        )
        if complete and settings.dialect.ids:  # the last acks may come after the deliveries
            complete = await bench.wait_for(
                lambda: not any(client.awaiting for client in bench.clients), deadline, expected
            )
        elapsed = time.perf_counter() - started
        for task in senders:
            task.cancel()
        report = bench.report(
            scenario,
            shown,
            messages=messages,
            size=size,
            window=window,
            join_seconds=round(join_seconds, 3),
            joins_per_second=round(connections / join_seconds) if join_seconds else 0.0,
            expected_deliveries=expected,
            timed_out=not complete,
            ids=settings.dialect.ids,
        )
        report.unacknowledged = sum(len(client.awaiting) for client in bench.clients)
        return bench.finish(report, cpu_before, elapsed)
    finally:
        bench.close_all()


async def capacity(settings: Settings, members: int) -> Report:
    bench = Bench(settings)
    try:
        rss_before = bench.rss()
        cpu_before = bench.cpu()
        join_seconds = await asyncio.wait_for(bench.connect(members), settings.timeout)
        report = bench.report(
            "capacity",
            members,
            join_seconds=round(join_seconds, 3),
            joins_per_second=round(members / join_seconds) if join_seconds else 0.0,
        )
        bench.finish(report, cpu_before, join_seconds)
        if rss_before is not None and report.server_rss_kib is not None:
            report.rss_per_member_kib = round((report.server_rss_kib - rss_before) / members, 2)
        report.notes.append(
            "joining N members costs O(N^2) by the protocol: each join is announced to everyone."
        )
        return report
    finally:
        bench.close_all()


async def churn(settings: Settings, rounds: int, batch: int) -> Report:
    deadline = time.monotonic() + settings.timeout
    meter = Bench(settings)  # the server's numbers around all the rounds
    cpu = meter.cpu()
    started = time.perf_counter()
    done = 0
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        bench = Bench(settings)
        try:
            await asyncio.wait_for(bench.connect(batch), max(0.1, deadline - time.monotonic()))
        finally:
            bench.close_all()
        await asyncio.gather(*(c.closed for c in bench.clients), return_exceptions=True)
        done += batch
        if settings.progress is not None:
            settings.progress(done, rounds * batch)
    elapsed = time.perf_counter() - started
    report = meter.report(
        "churn",
        done,
        join_seconds=round(elapsed, 3),
        joins_per_second=round(done / elapsed) if elapsed else 0.0,
        timed_out=done < rounds * batch,
    )
    return meter.finish(report, cpu, elapsed)


def run(coroutine: Any) -> Report:
    """Run a scenario; the open-files limit is raised first so thousands of clients fit."""
    from tcpchat.sockets import raise_open_file_limit

    raise_open_file_limit()
    try:
        result: Report = asyncio.run(coroutine)
    except asyncio.TimeoutError:
        raise BenchError("the clients could not all join before --timeout.") from None
    return result


def progress_printer(stream: Any = sys.stderr) -> Callable[[int, int], None]:
    """A one-line progress bar on a terminal (nothing elsewhere)."""
    if not getattr(stream, "isatty", lambda: False)():
        return lambda done, total: None
    width = 30

    def show(done: int, total: int) -> None:
        filled = int(width * min(done, total) / total) if total else width
        stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
