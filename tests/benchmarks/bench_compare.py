"""tcpchat beside IRC servers, measured by the same `tcpchat bench` in one run (not a test).

Starts each server on 127.0.0.1 (tcpchat on asyncio's loop and on uvloop, with its history in a
file in a temporary folder, or with `-memory` in memory; ngircd and InspIRCd when installed, with
their flood and per-address limits off), pins it to CPU 0 and the load
generator to CPU 1 where `taskset` exists, runs the same scenario against each, and prints a
Markdown table: deliveries per second, per server CPU-second, latency, loss, memory.

    python tests/benchmarks/bench_compare.py --messages 20000 --receivers 100 --repeat 3
    python tests/benchmarks/bench_compare.py --servers tcpchat-asyncio,tcpchat-asyncio-memory

IRC servers come from Debian: `apt-get install ngircd inspircd`.  Their configuration files are
written to a temporary folder here; nothing of theirs is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGIRCD_CONF = """[Global]
\tName = bench.irc
\tInfo = tcpchat bench comparison
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = bench
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxNickLength = 30
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
"""

INSPIRCD_CONF = """<server name="bench.irc" description="tcpchat bench comparison" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="*" timeout="60" threshold="100000000" commandrate="100000000"
         fakelag="no" localmax="1000000" globalmax="1000000" maxchans="100" limit="1000000"
         sendq="16M" recvq="16M" softsendq="16M" hardsendq="16M" pingfreq="600"
         resolvehostnames="no" useident="no">
<pid file="{folder}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{folder}/inspircd.log">
<limits maxnick="30" maxchan="64" maxline="8192">
<options defaultmodes="n">
<performance netbuffersize="10240" somaxconn="1024" softlimit="100000" clonesonconnect="no">
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def wait_listening(port: int, process: subprocess.Popen[bytes], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(map(str, process.args))} did not start") from None
            time.sleep(0.05)


@contextmanager
def server(kind: str, folder: Path) -> Iterator[tuple[int, int, str]]:
    """Start one server; yields (port, pid, protocol)."""
    port = free_port()
    if kind.startswith("tcpchat"):
        _, _, variant = kind.partition("-")
        loop, _, store = variant.partition("-")
        history = ["--memory"] if store == "memory" else ["--db", str(folder / f"{port}.sqlite3")]
        command = [sys.executable, "-m", "tcpchat", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--quiet", "--max-per-address", "0",
                   "--connect-rate", "0", "--rate", "0", "--history", "0",
                   "--event-loop", loop or "asyncio", *history]  # fmt: skip
        protocol = "tcpchat"
    elif kind == "ngircd":
        conf = folder / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(port=port))
        command = [shutil.which("ngircd") or "/usr/sbin/ngircd", "-n", "-f", str(conf)]
        protocol = "irc"
    else:
        conf = folder / "inspircd.conf"
        conf.write_text(INSPIRCD_CONF.format(port=port, folder=folder))
        command = ["inspircd", "--nofork", f"--config={conf}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--runasroot")
        protocol = "irc"
    process = subprocess.Popen(
        pinned(0, command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        yield port, process.pid, protocol
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def available(kind: str) -> bool:
    if kind == "ngircd":
        return bool(shutil.which("ngircd") or os.path.exists("/usr/sbin/ngircd"))
    if kind == "inspircd":
        return shutil.which("inspircd") is not None
    if kind.startswith("tcpchat-uvloop"):
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return False
    return True


def measure(kind: str, args: argparse.Namespace, folder: Path) -> dict[str, object]:
    with server(kind, folder) as (port, pid, protocol):
        command = pinned(1, [sys.executable, "-m", "tcpchat", "bench", "127.0.0.1",
                             "--port", str(port), "--protocol", protocol, "--json",
                             "--scenario", args.scenario, "--clients", str(args.receivers),
                             "--messages", str(args.messages), "--size", str(args.size),
                             "--window", str(args.window), "--server-pid", str(pid),
                             "--timeout", str(args.timeout)])  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + 30)
        if not result.stdout.strip():
            raise RuntimeError(f"bench against {kind} failed: {result.stderr.strip()}")
        report: dict[str, object] = json.loads(result.stdout)
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="fanout", choices=["fanout", "many"])
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per server; the median is shown"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--servers", default="tcpchat-asyncio,tcpchat-uvloop,ngircd,inspircd",
        help="comma-separated: tcpchat-asyncio, tcpchat-uvloop (history in a file), "
        "tcpchat-asyncio-memory, tcpchat-uvloop-memory (history in memory), ngircd, inspircd",
    )  # fmt: skip
    args = parser.parse_args()
    kinds = [kind for kind in args.servers.split(",") if kind]
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for kind in kinds:
            if not available(kind):
                print(f"skipping {kind}: not installed", file=sys.stderr)
                continue
            runs = [measure(kind, args, Path(temporary)) for _ in range(args.repeat)]
            runs.sort(key=lambda r: float(r.get("deliveries_per_cpu_second") or 0))
            median = runs[len(runs) // 2]  # the middle run, not the luckiest
            rows.append((kind, median))
            for report in runs:
                print(f"{kind}: {json.dumps(report)}", file=sys.stderr)
    print(
        f"\n{args.scenario}: {args.receivers} clients, {args.messages} messages of {args.size} "
        f"characters, window {args.window}; the median of {args.repeat} runs\n"
    )
    print("| server | deliveries/s | per server CPU-second | p50 ms | p99 ms | lost | RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, report in rows:
        latency = report["latency_ms"]
        assert isinstance(latency, dict)
        rss = report.get("server_rss_kib")
        print(
            f"| {kind} | {report['deliveries_per_second']:,.0f} | "
            f"{report.get('deliveries_per_cpu_second') or 0:,.0f} | {latency.get('p50', 0):.1f} | "
            f"{latency.get('p99', 0):.1f} | {report['lost']} | "
            f"{(rss or 0) / 1024:.1f} |"
        )


if __name__ == "__main__":
    main()
