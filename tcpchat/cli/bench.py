"""`tcpchat bench`: the load generator's options, one scenario run, its report and exit status.

The clients, scenarios and measuring are `tcpchat.bench`; this module only chooses and reports.
"""

from __future__ import annotations

from typing import Any

import click

from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES, Finite, complete_host, option
from tcpchat.defaults import DEFAULT_PORT, DEFAULT_WEB_PORT

BENCH_DEFAULT_CLIENTS = {"fanout": 100, "many": 20, "capacity": 1000, "churn": 100}
BENCH_DEFAULT_MESSAGES = {"fanout": 2000, "many": 100}


@click.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.argument(
    "host", default="127.0.0.1", envvar="TCPCHAT_BENCH_HOST", shell_complete=complete_host
)
@option(
    "--port",
    "-p",
    "ports",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    multiple=True,
    envvar="TCPCHAT_BENCH_PORT",
    show_default="1024; 8080 with --protocol ws, 6667 with --protocol irc",
    help="The server's TCP port, given again for each process of a cluster to spread the "
    "members over them in turn (in the variable: ports apart by spaces).",
)
@option(
    "--scenario",
    "-s",
    type=click.Choice(["fanout", "many", "capacity", "churn"]),
    default="fanout",
    envvar="TCPCHAT_BENCH_SCENARIO",
    help="What to measure: one sender to many, everyone to everyone, idle members, or join-and-leave.",
)
@option(
    "--clients",
    "-c",
    type=click.IntRange(1, 100_000),
    metavar="N",
    default=None,
    envvar="TCPCHAT_BENCH_CLIENTS",
    show_default="fanout 100 receivers, many 20 members, capacity 1000, churn 100 a round",
    help="How many clients the scenario uses.",
)
@option(
    "--messages",
    "-m",
    type=click.IntRange(1, 10_000_000),
    metavar="N",
    default=None,
    envvar="TCPCHAT_BENCH_MESSAGES",
    show_default="fanout 2000, many 100 per member",
    help="Messages to send (in all for fanout, per member for many).",
)
@option(
    "--size",
    type=click.IntRange(32, 65536),
    metavar="CHARS",
    default=100,
    envvar="TCPCHAT_BENCH_SIZE",
    help="Length of each message.",
)
@option(
    "--window",
    "-w",
    type=click.IntRange(1, 1_000_000),
    metavar="N",
    default=50,
    envvar="TCPCHAT_BENCH_WINDOW",
    help="Messages a sender may have on their way before it waits for them to arrive.",
)
@option(
    "--rounds",
    type=click.IntRange(1, 100_000),
    metavar="N",
    default=10,
    envvar="TCPCHAT_BENCH_ROUNDS",
    help="Rounds of the churn scenario.",
)
@option(
    "--protocol",
    type=click.Choice(["tcpchat", "ws", "irc"]),
    default="tcpchat",
    envvar="TCPCHAT_BENCH_PROTOCOL",
    help="Speak tcpchat's protocol over TCP, or over WebSocket as browsers do (the --web "
    "port), or IRC to measure an IRC server the same way.",
)
@option(
    "--ids",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_BENCH_IDS",
    help="Send every message with an id of its own, as `tcpchat join` does (the server "
    "remembers each, to deliver it once), and check that each is acknowledged once.",
)
@option(
    "--channel",
    metavar="NAME",
    default="#bench",
    envvar="TCPCHAT_BENCH_CHANNEL",
    help="The IRC channel to use with --protocol irc.",
)
@option(
    "--password",
    default=None,
    envvar="TCPCHAT_BENCH_PASSWORD",
    show_default="none",
    help="The server's password, if it has one.",
)
@option(
    "--server-pid",
    "server_pids",
    type=click.IntRange(1, 2**22),
    metavar="PID",
    multiple=True,
    envvar="TCPCHAT_BENCH_SERVER_PID",
    show_default="none",
    help="The server's process, to report its CPU time and memory (Linux); given again for "
    "each process of a cluster (and its Redis), the sum.",
)
@option(
    "--timeout",
    type=Finite(0, 86_400, min_open=True),
    metavar="SECONDS",
    default=120.0,
    envvar="TCPCHAT_BENCH_TIMEOUT",
    help="Longest the whole run may take.",
)
@option(
    "--json",
    "as_json",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_BENCH_JSON",
    help="Print the results as one JSON object.",
)
def bench(host: str, **options: Any) -> None:
    """Load the chat server on HOST and measure it, in the manner of redis-benchmark.

    Reports deliveries a second, latency (p50, p99, max from send to receipt), loss and
    reordering, join time, and with --server-pid the server's CPU time and memory.  With several
    --port, the members are spread over several server processes that share one room.  It exits
    1 if anything was lost, reordered, late past --timeout, or (--ids) never acknowledged.
    """
    from tcpchat import bench as load
    from tcpchat.words import counted

    scenario = options["scenario"]
    protocol = options["protocol"]
    default_port = {"irc": 6667, "ws": DEFAULT_WEB_PORT}.get(protocol, DEFAULT_PORT)
    ports = options["ports"] or (default_port,)
    if options["ids"] and protocol == "irc":
        raise click.UsageError("--ids needs tcpchat's protocol: IRC has no message ids.")
    dialect: Any = (
        load.IrcDialect(options["channel"], options["password"])
        if protocol == "irc"
        else load.TcpchatDialect(options["password"], ids=options["ids"])
    )
    settings = load.Settings(
        host=host,
        ports=ports,
        dialect=dialect,
        timeout=options["timeout"],
        server_pids=options["server_pids"],
        progress=None if options["as_json"] else load.progress_printer(),
        websocket=protocol == "ws",
    )
    clients = options["clients"] or BENCH_DEFAULT_CLIENTS[scenario]
    messages = options["messages"] or BENCH_DEFAULT_MESSAGES.get(scenario, 0)
    size, window = options["size"], options["window"]
    scenarios = {
        "fanout": lambda: load.fanout(settings, clients, messages, size, window),
        "many": lambda: load.many(settings, clients, messages, size, window),
        "capacity": lambda: load.capacity(settings, clients),
        "churn": lambda: load.churn(settings, options["rounds"], clients),
    }
    try:
        report = load.run(scenarios[scenario]())
    except load.BenchError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.as_json() if options["as_json"] else report.as_text())
    problems = report.lost + report.reordered + report.duplicates + report.seq_gaps
    if report.timed_out:
        raise click.ClickException("the run timed out before everything arrived.")
    if problems:
        raise click.ClickException(
            f"{counted(problems, 'delivery', 'deliveries')} lost, reordered or duplicated."
        )
    if report.unacknowledged:
        raise click.ClickException(
            f"{counted(report.unacknowledged, 'message')} never acknowledged."
        )
