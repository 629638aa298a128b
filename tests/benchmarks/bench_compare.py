"""tcpchat beside IRC servers, measured by the same `tcpchat bench` in one run (not a test).

Starts each server on 127.0.0.1 (tcpchat on asyncio's loop and on uvloop, with its history in a
file in a temporary folder, or with `-memory` in memory; ngircd and InspIRCd when installed, with
their flood and per-address limits off), pins it to CPU 0 and the load generator to CPU 1 where
`taskset` exists, and runs the same scenarios against each (fanout, many, churn, capacity), every
server in every round so that a slow moment of the machine falls on all of them.  It prints a
Markdown table per scenario: the median [range] of each figure over the rounds, and its ratio to
the reference server's in the same round (the median of those ratios).

    python tests/benchmarks/bench_compare.py --rounds 3
    python tests/benchmarks/bench_compare.py --scenarios fanout,many --servers tcpchat-asyncio,inspircd

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# Each scenario's shape, and the figures its table compares.
SCENARIO_ARGS = {
    "fanout": lambda a: ["--clients", str(a.receivers), "--messages", str(a.messages)],
    "many": lambda a: ["--clients", str(a.members), "--messages", str(a.each)],
    "churn": lambda a: ["--clients", str(a.batch), "--rounds", str(a.churn_rounds)],
    "capacity": lambda a: ["--clients", str(a.idle)],
}


def measure(kind: str, scenario: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with server(kind, folder) as (port, pid, protocol):
        command = pinned(1, [sys.executable, "-m", "tcpchat", "bench", "127.0.0.1",
                             "--port", str(port), "--protocol", protocol, "--json",
                             "--scenario", scenario, *SCENARIO_ARGS[scenario](args),
                             "--size", str(args.size), "--window", str(args.window),
                             "--server-pid", str(pid), "--timeout", str(args.timeout)])  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + 30)
        if not result.stdout.strip():
            raise RuntimeError(f"bench against {kind} failed: {result.stderr.strip()}")
        report: dict[str, Any] = json.loads(result.stdout)
        return report


def figures(scenario: str, report: dict[str, Any]) -> dict[str, float]:
    """The figures a scenario's table shows, from one run (higher is better but where said)."""
    cpu = float(report.get("server_cpu_seconds") or 0)
    if scenario in ("fanout", "many"):
        return {
            "deliveries per CPU-second": float(report.get("deliveries_per_cpu_second") or 0),
            "p99 ms (lower is better)": float(report["latency_ms"].get("p99", 0)),
        }
    if scenario == "churn":
        return {"join-and-leave cycles per CPU-second": report["clients"] / cpu if cpu else 0.0}
    return {
        "join seconds (lower is better)": float(report["join_seconds"]),
        "CPU-seconds (lower is better)": cpu,
        "KiB per member (lower is better)": float(report.get("rss_per_member_kib") or 0),
    }


def number(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def spread(values: list[float]) -> str:
    """median [min–max], as the README's tables show them."""
    ordered = sorted(values)
    middle = number(statistics.median(ordered))
    if len(ordered) == 1:
        return middle
    return f"{middle} [{number(ordered[0])}–{number(ordered[-1])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="fanout,many,churn,capacity")
    parser.add_argument("--receivers", type=int, default=100, help="fanout's receivers")
    parser.add_argument("--messages", type=int, default=20000, help="fanout's messages")
    parser.add_argument("--members", type=int, default=50, help="many's members")
    parser.add_argument("--each", type=int, default=200, help="many's messages per member")
    parser.add_argument("--batch", type=int, default=100, help="churn's members per round")
    parser.add_argument("--churn-rounds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=10000, help="capacity's idle members")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every run")
    parser.add_argument("--reference", default="inspircd", help="the server ratios are to")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--servers", default="tcpchat-asyncio,tcpchat-uvloop,ngircd,inspircd",
        help="comma-separated: tcpchat-asyncio, tcpchat-uvloop (history in a file), "
        "tcpchat-asyncio-memory, tcpchat-uvloop-memory (history in memory), ngircd, inspircd",
    )  # fmt: skip
    args = parser.parse_args()
    scenarios = [name for name in args.scenarios.split(",") if name]
    kinds = []
    for kind in (kind for kind in args.servers.split(",") if kind):
        if available(kind):
            kinds.append(kind)
        else:
            print(f"skipping {kind}: not installed", file=sys.stderr)
    # results[scenario][kind] = one dict of figures per round
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        scenario: {kind: [] for kind in kinds} for scenario in scenarios
    }
    with tempfile.TemporaryDirectory() as temporary:
        for round_ in range(args.rounds):  # interleaved: every server in every round
            for scenario in scenarios:
                for kind in kinds:
                    try:
                        report = measure(kind, scenario, args, Path(temporary))
                    except (RuntimeError, subprocess.TimeoutExpired) as error:
                        # ngircd, for one, closes connections past a few thousand
                        print(f"round {round_ + 1} {scenario} {kind} failed: {error}",
                              file=sys.stderr)  # fmt: skip
                        continue
                    print(f"round {round_ + 1} {scenario} {kind}: {json.dumps(report)}",
                          file=sys.stderr)  # fmt: skip
                    results[scenario][kind].append(figures(scenario, report))
    print(f"\nThe median [range] of {args.rounds} interleaved rounds; ratios are to "
          f"{args.reference} in the same round (their median).")  # fmt: skip
    for scenario in scenarios:
        print(f"\n{scenario} ({' '.join(SCENARIO_ARGS[scenario](args))})\n")
        measured = [runs for runs in results[scenario].values() if runs]
        names = list(measured[0][0]) if measured else []
        print("| server | " + " | ".join(f"{name} | ratio" for name in names) + " |")
        print("|---|" + "---:|---:|" * len(names))
        reference = results[scenario].get(args.reference)
        for kind in kinds:
            cells = []
            if not results[scenario][kind]:
                print(f"| {kind} | " + " | ".join(["failed", ""] * len(names)) + " |")
                continue
            for name in names:
                values = [run[name] for run in results[scenario][kind]]
                ratio = ""
                if reference and kind != args.reference and len(reference) == len(values):
                    ratios = [
                        mine / theirs
                        for mine, theirs in zip(values, (r[name] for r in reference), strict=True)
                        if theirs
                    ]
                    ratio = f"{statistics.median(ratios):.2f}×" if ratios else ""
                cells += [spread(values), ratio]
            print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
