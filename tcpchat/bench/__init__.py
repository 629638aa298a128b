"""`tcpchat bench`: load a chat server and measure it, in the manner of redis-benchmark.

`dialects` speaks tcpchat or IRC, `clients` are the members (asyncio Protocols in one process),
`report` holds what a run measured and reads the server's CPU and memory, and `scenarios` runs
fanout, many, capacity and churn, bounded by counts and by a timeout.
"""

from tcpchat.bench.clients import BenchClient, Tally
from tcpchat.bench.dialects import BenchError, Dialect, IrcDialect, TcpchatDialect, message_text
from tcpchat.bench.report import Report, server_cpu_seconds, server_rss_kib
from tcpchat.bench.scenarios import (
    Settings,
    capacity,
    churn,
    fanout,
    many,
    progress_printer,
    run,
)

__all__ = [
    "BenchClient",
    "BenchError",
    "Dialect",
    "IrcDialect",
    "Report",
    "Settings",
    "Tally",
    "TcpchatDialect",
    "capacity",
    "churn",
    "fanout",
    "many",
    "message_text",
    "progress_printer",
    "run",
    "server_cpu_seconds",
    "server_rss_kib",
]
