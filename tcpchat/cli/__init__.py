"""The `tcpchat` command: parse options, then call one function.

Heavy imports happen inside the commands so `tcpchat --help` and `tcpchat serve` start fast and
`serve` never loads prompt_toolkit.  Every failure a person can cause ends here as one sentence
(a `click.ClickException`), never a traceback.
"""

from __future__ import annotations

import errno
import functools
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import asyncio

from tcpchat import __version__
from tcpchat.defaults import DEFAULT_LINE_LIMIT, DEFAULT_MAX_TEXT, DEFAULT_PORT

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}
LOG_LEVELS = ["debug", "info", "warning", "error"]
SHELLS = ("bash", "zsh", "fish")
# The variable Click's completion scripts set when they ask `tcpchat` for candidates.
COMPLETE_VAR = "_TCPCHAT_COMPLETE"
MAX_COMMAND_LINE = 64 * 1024  # a longer console line is dropped (no command is that long)
EXIT_CODES = (
    "Exit status: 0 done, 1 failed (the reason is on stderr), 2 wrong usage, 130 interrupted."
)
# Every option can also come from the environment; the help says from which variable.
option = functools.partial(click.option, show_envvar=True)


class Finite(click.FloatRange):
    """A float range that also refuses `nan` (which no comparison with a bound would catch)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:  # nan
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def _complete_host(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Hosts joined before, most recent first, then this machine."""
    from tcpchat.client.recent import recent_hosts

    return [h for h in [*recent_hosts(), "127.0.0.1", "localhost"] if h.startswith(incomplete)]


def _complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Names used before, most recent first."""
    from tcpchat.client.recent import recent_names

    return [n for n in recent_names() if n.startswith(incomplete)]


def _printable(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse text that would break the banner line or drive members' terminals."""
    from tcpchat.protocol import is_forbidden_char

    if value is not None and any(is_forbidden_char(char) or char == "\n" for char in value):
        raise click.BadParameter("may not hold line breaks or control characters.")
    return value


def _fingerprint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A fingerprint in any form people paste, as the canonical `SHA256:...`."""
    if value is None:
        return None
    from tcpchat.tls import parse_fingerprint

    try:
        return parse_fingerprint(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(name="tcpchat", context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.version_option(__version__, "-V", "--version", prog_name="tcpchat")
def main() -> None:
    """A small chat server and client for a LAN or the internet.

    Start a server with 'tcpchat serve'; people join it with 'tcpchat join HOST' or with
    'nc HOST 1024'.  'tcpchat completion' sets up Tab completion for your shell.
    """


@main.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@option(
    "--host",
    default=None,
    metavar="ADDRESS",
    envvar="TCPCHAT_SERVE_HOST",
    show_default="every interface, IPv4 and IPv6",
    help="Address or host name to listen on.",
)
@option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=DEFAULT_PORT,
    envvar="TCPCHAT_SERVE_PORT",
    help="TCP port to listen on; 0 picks a free one.",
)
@option(
    "--name",
    default=socket.gethostname,
    metavar="TEXT",
    envvar="TCPCHAT_SERVE_NAME",
    show_default="this machine's host name",
    callback=_printable,
    help="The server's name, shown to everyone who joins.",
)
@option(
    "--motd",
    default=None,
    show_default="none",
    envvar="TCPCHAT_SERVE_MOTD",
    callback=_printable,
    help="A message of the day shown to everyone who joins.",
)
@option(
    "--max-text",
    type=click.IntRange(1, 65536),
    metavar="CHARS",
    default=DEFAULT_MAX_TEXT,
    envvar="TCPCHAT_SERVE_MAX_TEXT",
    help="Longest message, in characters.",
)
@option(
    "--max-clients",
    type=click.IntRange(1, 10_000_000),
    metavar="N",
    default=None,
    envvar="TCPCHAT_SERVE_MAX_CLIENTS",
    show_default="no limit",
    help="Most members at once; later ones are told the server is full.",
)
@option(
    "--history",
    type=click.IntRange(0, 100_000),
    metavar="N",
    default=50,
    envvar="TCPCHAT_SERVE_HISTORY",
    help="Recent messages shown to each member who joins (as many as fit in --send-buffer); 0 "
    "shows none.",
)
@option(
    "--password",
    default=None,
    envvar=["TCPCHAT_SERVE_PASSWORD", "TCPCHAT_PASSWORD"],
    show_default="none",
    help="A password every member must give to join (compared in constant time).",
)
@option(
    "--tls",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_SERVE_TLS",
    help="Encrypt every connection, with a self-signed certificate made on first use.",
)
@option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_SERVE_TLS_CERT",
    show_default="none",
    help="Certificate chain (PEM) for TLS; needs --tls-key.",
)
@option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_SERVE_TLS_KEY",
    show_default="none",
    help="Private key (PEM) of --tls-cert.",
)
@option(
    "--idle-timeout",
    type=Finite(0, 525_600, min_open=True),  # a year
    metavar="MINUTES",
    default=None,
    envvar="TCPCHAT_SERVE_IDLE_TIMEOUT",
    show_default="never",
    help="Minutes without a message or command (pings do not count) after which a member is "
    "warned, then removed.",
)
@option(
    "--max-per-address",
    type=click.IntRange(0, 1_000_000),
    metavar="N",
    default=32,
    envvar="TCPCHAT_SERVE_MAX_PER_ADDRESS",
    help="Connections open at once from one address (an IPv6 /64); 0 for no limit.",
)
@option(
    "--connect-rate",
    type=click.IntRange(0, 1_000_000),
    metavar="N",
    default=60,
    envvar="TCPCHAT_SERVE_CONNECT_RATE",
    help="New connections a minute from one address; 0 for no limit.",
)
@option(
    "--register-timeout",
    type=Finite(0, 3600, min_open=True),
    metavar="SECONDS",
    default=60.0,
    envvar="TCPCHAT_SERVE_REGISTER_TIMEOUT",
    help="Time a new connection has to choose a name before it is closed.",
)
@option(
    "--rate",
    type=Finite(0, 1_000_000),
    metavar="LINES",
    default=20.0,
    envvar="TCPCHAT_SERVE_RATE",
    help="Lines a second one member may send (in bursts of three times as many) before its "
    "reading is slowed; 0 for no limit.",
)
@option(
    "--byte-rate",
    type=Finite(0, 1024 * 1024),  # a GiB a second
    metavar="KIB",
    default=16.0,
    envvar="TCPCHAT_SERVE_BYTE_RATE",
    help="KiB a second one member may send (in bursts of four times as many, and twice as much "
    "from one address) before its reading is slowed; 0 for no byte limit.",
)
@option(
    "--send-buffer",
    type=click.IntRange(1, 1024 * 1024),  # a GiB
    metavar="KIB",
    default=256,
    envvar="TCPCHAT_SERVE_SEND_BUFFER",
    help="Unread data a member may leave waiting before it is dropped as slow, in KiB.",
)
@option(
    "--log-file",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_SERVE_LOG_FILE",
    show_default="none",
    help="Append a detailed log (with client addresses) to this file, readable by you only.",
)
@option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    envvar="TCPCHAT_SERVE_LOG_LEVEL",
    help="Least severe level written to the log file.",
)
@option(
    "--quiet",
    "-q",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_SERVE_QUIET",
    help="Print only warnings and errors on the console.",
)
@option(
    "--event-loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    envvar="TCPCHAT_SERVE_EVENT_LOOP",
    help="The event loop to run on; auto takes uvloop when it is installed (pip install 'tcpchat[fast]').",
)
def serve(**options: Any) -> None:
    """Run a chat server (one room) until Ctrl-C."""
    from tcpchat.protocol import KIB
    from tcpchat.server.chat_server import ServerConfig

    max_text = options["max_text"]
    rate = options["rate"]
    tls_context, fingerprint, tls_warning = _server_tls(
        options["tls"], options["tls_cert"], options["tls_key"], options["name"]
    )
    idle_minutes = options["idle_timeout"]
    config = ServerConfig(
        host=options["host"],
        port=options["port"],
        name=options["name"],
        motd=options["motd"],
        max_text=max_text,
        max_clients=options["max_clients"],
        history=options["history"],
        password=options["password"],
        idle_timeout=None if idle_minutes is None else idle_minutes * 60,
        max_per_address=options["max_per_address"] or None,
        connect_rate=options["connect_rate"] or None,
        registration_timeout=options["register_timeout"],
        rate=rate,
        burst=max(1, round(3 * rate)),
        byte_rate=options["byte_rate"] * KIB,
        outgoing_limit=options["send_buffer"] * KIB,
        tls=tls_context,
        # Room for the longest text even when every character is sent as a 12-byte JSON escape.
        line_limit=max(DEFAULT_LINE_LIMIT, 12 * max_text + 1024),
    )
    run_server(
        config,
        quiet=options["quiet"],
        log_file=options["log_file"],
        log_level=options["log_level"],
        tls_fingerprint=fingerprint,
        event_loop=options["event_loop"],
        warnings=[tls_warning] if tls_warning else [],
    )


BENCH_DEFAULT_CLIENTS = {"fanout": 100, "many": 20, "capacity": 1000, "churn": 100}
BENCH_DEFAULT_MESSAGES = {"fanout": 2000, "many": 100}


@main.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.argument(
    "host", default="127.0.0.1", envvar="TCPCHAT_BENCH_HOST", shell_complete=_complete_host
)
@option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    default=None,
    envvar="TCPCHAT_BENCH_PORT",
    show_default="1024, or 6667 with --protocol irc",
    help="The server's TCP port.",
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
    type=click.Choice(["tcpchat", "irc"]),
    default="tcpchat",
    envvar="TCPCHAT_BENCH_PROTOCOL",
    help="Speak tcpchat's protocol, or IRC to measure an IRC server the same way.",
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
    type=click.IntRange(1, 2**22),
    metavar="PID",
    default=None,
    envvar="TCPCHAT_BENCH_SERVER_PID",
    show_default="none",
    help="The server's process, to report its CPU time and memory (Linux).",
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
    reordering, join time, and with --server-pid the server's CPU time and memory.  It exits 1
    if anything was lost, reordered or late past --timeout.
    """
    from tcpchat import bench as load
    from tcpchat.server.console import counted

    scenario = options["scenario"]
    protocol = options["protocol"]
    port = options["port"] or (6667 if protocol == "irc" else DEFAULT_PORT)
    dialect: Any = (
        load.IrcDialect(options["channel"], options["password"])
        if protocol == "irc"
        else load.TcpchatDialect(options["password"])
    )
    settings = load.Settings(
        host=host,
        port=port,
        dialect=dialect,
        timeout=options["timeout"],
        server_pid=options["server_pid"],
        progress=None if options["as_json"] else load.progress_printer(),
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
    if report.timed_out or problems:
        raise click.ClickException(
            "the run timed out before everything arrived."
            if report.timed_out
            else f"{counted(problems, 'delivery', 'deliveries')} lost, reordered or duplicated."
        )


def _server_tls(
    tls: bool, cert_file: str | None, key_file: str | None, server_name: str
) -> tuple[Any, str | None, str | None]:
    """The TLS context `serve` asked for, its certificate's fingerprint, and a warning about its
    key if others may read it; (None, None, None) without TLS."""
    if cert_file is None and key_file is None and not tls:
        return None, None, None
    if (cert_file is None) != (key_file is None):
        raise click.UsageError("give --tls-cert and --tls-key together.")
    from tcpchat import tls as tls_files
    from tcpchat.files import config_dir

    try:
        if cert_file is None or key_file is None:
            cert, key = tls_files.self_signed_certificate(config_dir(), server_name)
        else:
            cert, key = Path(cert_file), Path(key_file)
        context = tls_files.server_context(cert, key)
        return context, tls_files.certificate_fingerprint(cert), tls_files.key_exposure(key)
    except tls_files.TlsError as error:
        raise click.ClickException(str(error)) from None


@main.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.argument("host", required=False, envvar="TCPCHAT_HOST", shell_complete=_complete_host)
@option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    default=DEFAULT_PORT,
    envvar="TCPCHAT_PORT",
    help="The server's TCP port.",
)
@option(
    "--name",
    "-n",
    default=None,
    metavar="NAME",
    envvar="TCPCHAT_NAME",
    show_default="asked for",
    shell_complete=_complete_name,
    help="Your name in the chat.",
)
@option(
    "--password",
    default=None,
    envvar="TCPCHAT_PASSWORD",
    show_default="none",
    help="The server's password, if it has one.",
)
@option(
    "--json",
    "as_json",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_JSON",
    help="Print the server's events as JSON lines (when input is not a terminal).",
)
@option(
    "--tls",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_TLS",
    help="Connect with TLS, verified by the system's certificate authorities, or else by a "
    "fingerprint pinned on first use once you accept it, as SSH does.",
)
@option(
    "--ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_CA",
    show_default="the system's certificate authorities",
    help="Verify the server with only the certificate authorities in this PEM file (implies --tls).",
)
@option(
    "--fingerprint",
    metavar="SHA256:...",
    default=None,
    envvar="TCPCHAT_FINGERPRINT",
    show_default="none",
    callback=_fingerprint,
    help="Accept only the server certificate with this fingerprint (implies --tls).",
)
@option(
    "--trust-new",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_TRUST_NEW",
    help="Trust and pin a certificate no authority vouches for from a server not met before, "
    "without asking (for scripts, which cannot be asked; implies --tls).",
)
def join(
    host: str | None,
    port: int,
    name: str | None,
    password: str | None,
    as_json: bool,
    tls: bool,
    ca_file: Path | None,
    fingerprint: str | None,
    trust_new: bool,
) -> None:
    """Join the chat on HOST (or HOST:PORT, [IPV6]:PORT).

    With a terminal, this is an interactive chat screen; HOST and the name are asked for when
    not given.  Otherwise (a pipe or a file) every input line is sent as a message and the
    command ends once each has been acknowledged.
    """
    import asyncio

    from tcpchat.client.connection import ChatError, TlsSettings
    from tcpchat.protocol import strip_unsafe

    if host:
        host, port = _join_address(host, port)
    trusting = [
        flag
        for flag, given in (
            ("--ca", ca_file),
            ("--fingerprint", fingerprint),
            ("--trust-new", trust_new),
        )
        if given
    ]
    if len(trusting) > 1:
        raise click.UsageError(
            "give one of --ca (trust what that authority signed), --fingerprint (trust this one "
            f"certificate) and --trust-new (trust a new server's first certificate), not "
            f"{' and '.join(trusting)}."
        )
    settings = None
    if tls or trusting:
        settings = TlsSettings(ca_file=ca_file, fingerprint=fingerprint, trust_new=trust_new)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not as_json
    try:
        if interactive:
            from tcpchat.client.ui.screen import run_interactive

            asyncio.run(run_interactive(host, port, name, password, settings))
        else:
            if not host:
                raise click.UsageError(
                    "give HOST (or set TCPCHAT_HOST) when input is not a terminal."
                )
            if not name:
                raise click.UsageError(
                    "give --name (or set TCPCHAT_NAME) when input is not a terminal."
                )
            from tcpchat.client.script import run_script

            asyncio.run(run_script(host, port, name, password, as_json=as_json, tls=settings))
    except (
        ChatError
    ) as error:  # its words may come from the server: never let them drive the terminal
        raise click.ClickException(strip_unsafe(str(error))) from None
    except KeyboardInterrupt:
        sys.exit(130)


def _join_address(host: str, port: int) -> tuple[str, int]:
    """HOST as people write it (`HOST:PORT`, `[V6]:PORT`, `[V6]`, a bare IPv6 address), and the
    port: from HOST when it has one, which --port may repeat but not contradict."""
    from tcpchat.client.connection import split_address

    try:
        host, written = split_address(host)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HOST") from None
    if written is None:
        return host, port
    source = click.get_current_context().get_parameter_source("port")
    if written != port and source is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError(
            f"the port is given twice, and differently: {written} in HOST and {port} with "
            "--port (or TCPCHAT_PORT); give it once."
        )
    return host, written


@main.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=EXIT_CODES,
    short_help="Print the Tab completion script for your shell.",
)
@click.argument("shell", type=click.Choice(SHELLS), required=False, metavar="[SHELL]")
def completion(shell: str | None) -> None:
    """Print the Tab completion script for SHELL (default: your login shell).

    It completes commands, options, their choices and files, the hosts you joined and the names
    you used.  To turn it on, run the line for your shell once, then open a new shell:

    \b
    bash  tcpchat completion bash > ~/.tcpchat-complete.bash && echo '. ~/.tcpchat-complete.bash' >> ~/.bashrc
    zsh   tcpchat completion zsh > ~/.tcpchat-complete.zsh && echo 'autoload -Uz compinit && compinit && . ~/.tcpchat-complete.zsh' >> ~/.zshrc
    fish  mkdir -p ~/.config/fish/completions && tcpchat completion fish > ~/.config/fish/completions/tcpchat.fish
    """
    from click.shell_completion import get_completion_class

    shell = shell or _login_shell()
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of Click's
    # Exactly what `_TCPCHAT_COMPLETE={shell}_source tcpchat` prints, so completions/ can be compared.
    click.echo(completer(main, {}, "tcpchat", COMPLETE_VAR).source(), nl=False)


def _login_shell() -> str:
    """The shell named by $SHELL, when it is one we have a script for."""
    import os

    shell = os.path.basename(os.environ.get("SHELL", ""))
    if shell not in SHELLS:
        raise click.UsageError(
            "cannot tell your shell from $SHELL; give one of: " + ", ".join(SHELLS) + "."
        )
    return shell


def run_server(
    config: Any,
    *,
    quiet: bool,
    log_file: str | None,
    log_level: str,
    tls_fingerprint: str | None = None,
    event_loop: str = "asyncio",
    warnings: Sequence[str] = (),
) -> None:
    """Set up the console and the log, run the server until a stop signal, exit 0.

    `warnings` are sentences about the set-up, shown even with `quiet` and kept in the log."""
    _standard_descriptors_open()
    import asyncio
    import logging

    from tcpchat import sockets
    from tcpchat.server import console
    from tcpchat.server.chat_server import ChatServer
    from tcpchat.server.chat_server import serve as serve_forever

    try:
        console.setup_logging(quiet=quiet, log_file=log_file, log_level=log_level)
    except OSError as exc:
        raise click.ClickException(
            f"cannot open the log file {log_file}: {exc.strerror}."
        ) from None
    for warning in warnings:
        logging.getLogger("tcpchat.console").warning("%s.", warning)
    _, limit_note = sockets.raise_open_file_limit()

    def started(server: ChatServer) -> None:
        _take_operator_commands(server)
        all_interfaces = config.host in (None, "", "*")
        if quiet:
            where = console.listening_line(
                listening=server.addresses, port=server.ports[0], all_interfaces=all_interfaces
            )
            click.echo(where)
            return
        text = console.welcome_text(
            server_name=config.name,
            listening=server.addresses,
            port=server.ports[0],
            all_interfaces=all_interfaces,
            max_text=config.max_text,
            max_clients=config.max_clients,
            history=config.history,
            password=config.password is not None,
            tls_fingerprint=tls_fingerprint,
            idle_minutes=None if config.idle_timeout is None else config.idle_timeout / 60,
            commands=sys.stdin is not None and sys.stdin.isatty(),
            notes=[limit_note] if limit_note else [],
        )
        click.echo(text)

    async def main() -> None:
        stop = asyncio.Event()
        _on_stop_signal(stop)
        await serve_forever(config, stop.wait, started)

    try:
        _loop_runner(event_loop)(main())
    except KeyboardInterrupt:
        pass  # a second Ctrl-C during shutdown, or Windows before the handler is in place
    except OSError as exc:
        raise click.ClickException(_listen_error(config.host, config.port, exc)) from None


def _standard_descriptors_open() -> None:
    """Give a closed standard descriptor (`tcpchat serve <&-`) /dev/null: otherwise the next
    socket or file opened takes its number, and code that means the terminal (or uvloop, which
    refuses to close descriptors 0 to 2) gets a connection instead."""
    import os

    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)


def _loop_runner(choice: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    """`asyncio.run`, or uvloop's when it is wanted and installed (POSIX only)."""
    import asyncio

    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise click.UsageError(
                "uvloop is not installed here; pip install 'tcpchat[fast]' (not on Windows)."
            ) from None
        return asyncio.run
    return uvloop.run


def _take_operator_commands(server: Any) -> None:
    """Read the operator's /commands from standard input, if there is one (tcpchat.moderation).

    The end of input ends only the commands, never the server: under a service manager standard
    input is often /dev/null.
    """
    import asyncio

    if sys.stdin is None:
        return
    import logging

    from tcpchat.server import moderation
    from tcpchat.stdin import start_feeding

    def on_line(line: bytes | None) -> None:
        if line is None:
            return
        try:
            answer = moderation.execute(server, line.decode("utf-8", "replace"))
        except Exception:  # a bug in a command must not stop the server
            logging.getLogger("tcpchat.server").exception("the command %r failed", line)
            answer = "That command failed because of an internal error (see the log)."
        if answer:
            try:
                click.echo(answer)
            except OSError:  # a terminal we may not write to (a background job): drop it
                pass

    start_feeding(
        sys.stdin.buffer,
        asyncio.get_running_loop(),
        on_line,
        wait_in_background=True,
        max_line=MAX_COMMAND_LINE,
    )


def _on_stop_signal(stop: asyncio.Event) -> None:
    """Set `stop` on Ctrl-C or SIGTERM; signal.signal where the loop cannot (Windows)."""
    import asyncio

    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))


def _listen_error(host: str | None, port: int, exc: OSError) -> str:
    where = f"port {port}" if host is None else f"{host} port {port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use; stop the other server or choose another --port."
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on {where}; choose a --port above 1023 or run with more rights."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine."
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name {host!r}."
    return f"cannot listen on {where}: {exc.strerror or exc}."


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="tcpchat")
    sys.exit(0)
