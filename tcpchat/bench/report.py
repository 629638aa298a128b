"""What a run measured, and the server's CPU time and memory read from /proc (Linux)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

N = TypeVar("N", int, float)

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


def total(pids: Sequence[int], measure: Callable[[int], N | None]) -> N | None:
    """`measure` summed over the serving processes `pids` (a cluster's servers and its Redis);
    None if there are none or any one is unknown, since a part of the sum would mislead."""
    values = [measure(pid) for pid in pids]
    known = [value for value in values if value is not None]
    if not values or len(known) < len(values):
        return None
    return sum(known[1:], known[0])


@dataclass
class Report:
    """What a run measured; `None` where it does not apply or could not be known."""

    scenario: str
    protocol: str
    server: str  # host:port, or host:port,port,... when members were spread over several
    clients: int
    ports: list[int] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)  # the CPU and RSS are their sum
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
    ids: bool = False  # every `say` carried an id (`--ids`)
    acknowledged: int = 0  # ids acknowledged, each once
    unacknowledged: int = 0  # ids sent and never acknowledged
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
        if self.ids:
            lines.append(
                f"  ids         {self.acknowledged:,} acknowledged once, "
                f"{self.unacknowledged:,} never"
            )
        if self.server_cpu_seconds is not None:
            per_cpu = (
                f" = {self.deliveries_per_cpu_second:,.0f} deliveries per CPU-second"
                if self.deliveries_per_cpu_second
                else ""
            )
            lines.append(f"  server CPU  {self.server_cpu_seconds:.2f} s{self._summed()}{per_cpu}")
        if self.server_rss_kib is not None:
            per_member = (
                f", {self.rss_per_member_kib:.1f} KiB per member"
                if self.rss_per_member_kib is not None
                else ""
            )
            lines.append(
                f"  server RSS  {self.server_rss_kib / 1024:.1f} MiB{self._summed()}{per_member}"
            )
        if self.timed_out:
            lines.append("  TIMED OUT before every delivery arrived.")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _summed(self) -> str:
        count = len(self.server_pids)
        return f" in {count} processes" if count > 1 else ""

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


def percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] / 1e6}
