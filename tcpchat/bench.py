"""`tcpchat bench`: load a chat server and measure it, in the manner of redis-benchmark.

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
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

JOIN_BATCH = 200  # clients connecting at once while a crowd joins
MESSAGE_PREFIX = "B"
# tcpchat's own encoding of a benchmark `message` (other servers may order fields otherwise).
_TCPCHAT_MESSAGE = re.compile(
    rb'\{"type":"message","seq":(\d+),"from":"([^"\\]*)","text":"B(\d+) (\d+) (\d+) '
)
_TCPCHAT_ACK = re.compile(rb'\{"type":"ack","id":(?:null|"[^"]*"),"seq":(\d+)')
# A benchmark PRIVMSG, read without splitting the line (as tcpchat's have their fast path).
_IRC_MESSAGE = re.compile(rb":[^ ]+ PRIVMSG [^ ]+ :B(\d+) (\d+) (\d+) ")
_TCPCHAT_IGNORED = (b'{"type":"ack"', b'{"type":"joined"', b'{"type":"left"', b'{"type":"pong"')


class BenchError(Exception):
    """Why a benchmark could not run, in one sentence."""


# --- how to speak to each kind of server -------------------------------------------------------


class Dialect(Protocol):
    """One chat protocol, as the benchmark needs it: join, say, and recognise messages."""

    name: str

    def hello(self, nick: str) -> bytes: ...
    def on_line(self, client: BenchClient, line: bytes) -> None: ...
    def say(self, text: str) -> bytes: ...
    def bye(self) -> bytes: ...


class TcpchatDialect:
    """PROTOCOL.md's JSON mode."""

    name = "tcpchat"

    def __init__(self, password: str | None = None) -> None:
        self.password = password

    def hello(self, nick: str) -> bytes:
        hello: dict[str, Any] = {"type": "hello", "name": nick, "version": 1}
        if self.password is not None:
            hello["password"] = self.password
        return json.dumps(hello).encode() + b"\n"

    def on_line(self, client: BenchClient, line: bytes) -> None:
        fast = _TCPCHAT_MESSAGE.match(line)
        if fast is not None:  # tcpchat's own field order: no JSON parsing per delivery
            seq, _, sender, number, sent = fast.groups()
            client.on_message(int(sender), int(number), int(sent), int(seq))
            return
        ack = _TCPCHAT_ACK.match(line)
        if ack is not None:  # our own message's place in `seq`: the others' go on after it
            client.on_own_seq(int(ack.group(1)))
            return
        if not line.startswith(b"{") or line.startswith(_TCPCHAT_IGNORED):
            return  # the banner, and what the benchmark does not count
        try:
            event = json.loads(line)
        except ValueError:
            client.fail(f"the server sent a line that is not JSON: {line[:80]!r}")
            return
        kind = event.get("type")
        if kind == "message":
            parsed = _parse_text(str(event.get("text", "")))
            if parsed is not None:
                seq = event.get("seq")
                client.on_message(*parsed, seq if isinstance(seq, int) else None)
        elif kind == "welcome":
            client.on_joined()
        elif kind == "error":
            client.fail(f"the server refused: {event.get('message') or event.get('code')}")
        elif kind == "shutdown":
            client.fail(f"the server closed the connection: {event.get('message')}")

    def say(self, text: str) -> bytes:
        return json.dumps({"type": "say", "text": text}).encode() + b"\n"

    def bye(self) -> bytes:
        return b'{"type":"bye"}\n'


class IrcDialect:
    """RFC 1459/2812 client lines: NICK/USER, JOIN a channel, PRIVMSG to it."""

    name = "irc"

    def __init__(self, channel: str = "#bench", password: str | None = None) -> None:
        self.channel = channel
        self.password = password

    def hello(self, nick: str) -> bytes:
        password = f"PASS {self.password}\r\n" if self.password else ""
        return f"{password}NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode()

    def on_line(self, client: BenchClient, line: bytes) -> None:
        fast = _IRC_MESSAGE.match(line)
        if fast is not None:
            sender, number, sent = fast.groups()
            client.on_message(int(sender), int(number), int(sent), None)
            return
        line = line.rstrip(b"\r")
        if line.startswith(b"PING"):
            client.write(b"PONG" + line[4:] + b"\r\n")
            return
        if not line.startswith(b":"):
            if line.startswith(b"ERROR"):
                client.fail(f"the server closed the connection: {line.decode(errors='replace')}")
            return
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return
        command = parts[1]
        if command == b"PRIVMSG" and len(parts) == 4:
            parsed = _parse_text(parts[3].partition(b":")[2].decode(errors="replace"))
            if parsed is not None:
                client.on_message(*parsed, None)
        elif command == b"001":  # registered: now join the channel
            client.write(f"JOIN {self.channel}\r\n".encode())
        elif command == b"366":  # end of the channel's names: we are in
            client.on_joined()
        elif command in (b"432", b"433", b"436", b"437", b"464", b"465", b"471", b"473", b"474"):
            client.fail(f"the server refused: {line.decode(errors='replace')}")

    def say(self, text: str) -> bytes:
        return f"PRIVMSG {self.channel} :{text}\r\n".encode()

    def bye(self) -> bytes:
        return b"QUIT :bench done\r\n"


def message_text(sender: int, number: int, size: int) -> str:
    """`B<sender> <number> <sent ns>` padded with `x` to `size` characters."""
    head = f"{MESSAGE_PREFIX}{sender} {number} {time.perf_counter_ns()} "
    return head + "x" * max(0, size - len(head))


def _parse_text(text: str) -> tuple[int, int, int] | None:
    if not text.startswith(MESSAGE_PREFIX):
        return None
    fields = text[1:].split(" ", 3)
    try:
        return int(fields[0]), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


# --- one client --------------------------------------------------------------------------------


class Tally:
    """What the receivers saw, all together."""

    def __init__(self) -> None:
        self.deliveries = 0
        self.lost = 0
        self.reordered = 0
        self.duplicates = 0
        self.seq_gaps = 0
        self.latencies_ns: list[int] = []
        self.changed = asyncio.Event()


class BenchClient(asyncio.Protocol):
    """A member: joins, counts what it receives, and writes without awaiting."""

    def __init__(self, nick: str, dialect: Dialect, tally: Tally) -> None:
        self.nick = nick
        self.dialect = dialect
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.from_sender: dict[int, int] = {}  # sender -> messages received from it
        self._next_number: dict[int, int] = {}
        self._last_seq: int | None = None
        self._buffer = b""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.dialect.hello(self.nick))

    def data_received(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self.dialect.on_line(self, line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("the server closed the connection.")
        if not self.closed.done():
            self.closed.set_result(None)

    # events from the dialect

    def on_joined(self) -> None:
        if not self.joined.done():
            self.joined.set_result(None)

    def on_message(self, sender: int, number: int, sent_ns: int, seq: int | None) -> None:
        tally = self.tally
        tally.latencies_ns.append(time.perf_counter_ns() - sent_ns)
        tally.deliveries += 1
        self.received += 1
        self.from_sender[sender] = self.from_sender.get(sender, 0) + 1
        expected = self._next_number.get(sender, 0)
        if number == expected:
            self._next_number[sender] = number + 1
        elif number > expected:
            tally.lost += number - expected  # counted back if they arrive late
            self._next_number[sender] = number + 1
        else:
            tally.reordered += 1
            tally.lost -= 1
        if seq is not None:
            self.on_own_seq(seq)
        tally.changed.set()

    def on_own_seq(self, seq: int) -> None:
        """`seq` must go up by one whether a message came to us or was ours (its ack)."""
        if self._last_seq is not None and seq != self._last_seq + 1:
            if seq <= self._last_seq:
                self.tally.duplicates += 1
            else:
                self.tally.seq_gaps += seq - self._last_seq - 1
        self._last_seq = seq

    def fail(self, why: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(BenchError(why))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, polite: bool = True) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if polite:
                self.transport.write(self.dialect.bye())
            self.transport.close()


# --- measuring the server ----------------------------------------------------------------------


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def server_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Report:
    """What a run measured; `None` where it does not apply or could not be known."""

    scenario: str
    protocol: str
    server: str
    clients: int
    messages: int = 0
    size: int = 0
    window: int = 0
    join_seconds: float = 0.0
    joins_per_second: float = 0.0
    seconds: float = 0.0
    expected_deliveries: int = 0
    deliveries: int = 0
    deliveries_per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    lost: int = 0
    reordered: int = 0
    duplicates: int = 0
    seq_gaps: int = 0
    server_cpu_seconds: float | None = None
    deliveries_per_cpu_second: float | None = None
    server_rss_kib: int | None = None
    rss_per_member_kib: float | None = None
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def as_text(self) -> str:
        lines = [f"{self.scenario} on {self.server} ({self.protocol}): {self._shape()}"]
        if self.join_seconds:
            lines.append(
                f"  joined      {self.clients:,} clients in {self.join_seconds:.2f} s "
                f"({self.joins_per_second:,.0f}/s)"
            )
        if self.expected_deliveries:
            lines.append(
                f"  deliveries  {self.deliveries:,} of {self.expected_deliveries:,} in "
                f"{self.seconds:.2f} s = {self.deliveries_per_second:,.0f}/s"
            )
        if self.latency_ms:
            lat = self.latency_ms
            lines.append(
                f"  latency     p50 {lat['p50']:.1f} ms   p99 {lat['p99']:.1f} ms   "
                f"max {lat['max']:.1f} ms"
            )
        if self.expected_deliveries:
            lines.append(
                f"  order       lost {self.lost}, reordered {self.reordered}, "
                f"duplicates {self.duplicates}, seq gaps {self.seq_gaps}"
            )
        if self.server_cpu_seconds is not None:
            per_cpu = (
                f" = {self.deliveries_per_cpu_second:,.0f} deliveries per CPU-second"
                if self.deliveries_per_cpu_second
                else ""
            )
            lines.append(f"  server CPU  {self.server_cpu_seconds:.2f} s{per_cpu}")
        if self.server_rss_kib is not None:
            per_member = (
                f", {self.rss_per_member_kib:.1f} KiB per member"
                if self.rss_per_member_kib is not None
                else ""
            )
            lines.append(f"  server RSS  {self.server_rss_kib / 1024:.1f} MiB{per_member}")
        if self.timed_out:
            lines.append("  TIMED OUT before every delivery arrived.")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _shape(self) -> str:
        if self.scenario == "fanout":
            return (
                f"{self.clients:,} receivers, {self.messages:,} messages of {self.size} "
                f"characters, window {self.window}"
            )
        if self.scenario == "many":
            return f"{self.clients:,} members sending {self.messages:,} each, window {self.window}"
        if self.scenario == "capacity":
            return f"{self.clients:,} idle members"
        return f"{self.clients:,} connections joining and leaving"


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] / 1e6}


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Settings:
    host: str
    port: int
    dialect: Dialect
    timeout: float = 120.0
    server_pid: int | None = None
    progress: Callable[[int, int], None] | None = None  # (done, total)


class Bench:
    """Clients, their tally, and the server's numbers around the measured part."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tally = Tally()
        self.clients: list[BenchClient] = []
        self.run_id = secrets.token_hex(2)[:3]  # names of concurrent runs do not collide

    async def connect(self, count: int, first: int = 0) -> float:
        """Connect and join `count` more clients, JOIN_BATCH at a time; the seconds it took."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for start in range(first, first + count, JOIN_BATCH):
            batch = []
            for n in range(start, min(first + count, start + JOIN_BATCH)):
                client = BenchClient(f"b{self.run_id}{n}", self.settings.dialect, self.tally)
                batch.append(client)
                self.clients.append(client)
            try:
                await asyncio.gather(
                    *(
                        loop.create_connection(
                            lambda c=c: c,  # type: ignore[misc]
                            self.settings.host,
                            self.settings.port,
                        )
                        for c in batch
                    )
                )
            except OSError as exc:
                why = os.strerror(exc.errno) if exc.errno else str(exc)  # not asyncio's wording
                raise BenchError(
                    f"cannot connect to {self.settings.host} port {self.settings.port}: {why}."
                ) from None
            await asyncio.gather(*(c.joined for c in batch))
        return time.perf_counter() - started

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
        pid = self.settings.server_pid
        return None if pid is None else server_cpu_seconds(pid)

    def rss(self) -> int | None:
        pid = self.settings.server_pid
        return None if pid is None else server_rss_kib(pid)

    def report(self, scenario: str, clients: int, **values: Any) -> Report:
        where = f"{self.settings.host}:{self.settings.port}"
        return Report(scenario, self.settings.dialect.name, where, clients, **values)

    def finish(self, report: Report, cpu_before: float | None, elapsed: float) -> Report:
        tally = self.tally
        report.seconds = round(elapsed, 3)
        report.deliveries = tally.deliveries
        report.deliveries_per_second = round(tally.deliveries / elapsed) if elapsed else 0.0
        report.latency_ms = {k: round(v, 2) for k, v in _percentiles(tally.latencies_ns).items()}
        # Missing at the end, or skipped in a sender's numbering (whichever says more).
        report.lost = max(0, report.expected_deliveries - tally.deliveries, tally.lost)
        report.reordered, report.duplicates = tally.reordered, tally.duplicates
        report.seq_gaps = tally.seq_gaps
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
    dialect = sender.dialect
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
        sender.write(dialect.say(message_text(sender_number, number, size)))


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
        )
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
