"""`tcpchat serve`: the server's options, turned into a `ServerConfig` for the serve process.

The process itself (console, log, event loop, signals) is `tcpchat.server.run`; this module only
parses, and turns what stops a server from starting into one sentence and an exit status.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES, Finite, option
from tcpchat.defaults import (
    DEFAULT_KEEP_DAYS,
    DEFAULT_KEEP_MESSAGES,
    DEFAULT_MAX_TEXT,
    DEFAULT_PORT,
    DEFAULT_WEB_PORT,
)

if TYPE_CHECKING:
    from tcpchat.server.config import ServerConfig

LOG_LEVELS = ["debug", "info", "warning", "error"]
T = TypeVar("T")


def _printable(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse text that would break the banner line or drive members' terminals."""
    from tcpchat.protocol import is_forbidden_char

    if value is not None and any(is_forbidden_char(char) or char == "\n" for char in value):
        raise click.BadParameter("may not hold line breaks or control characters.")
    return value


@click.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
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
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_SERVE_DB",
    show_default="a file for this address and port in tcpchat's folder (none with --port 0)",
    help="The SQLite file that keeps the history, so that it survives a restart.",
)
@option(
    "--memory",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_SERVE_MEMORY",
    help="Keep the history in memory only: it is gone when the server stops.",
)
@option(
    "--keep-days",
    type=click.IntRange(0, 1_000_000),
    metavar="DAYS",
    default=DEFAULT_KEEP_DAYS,
    envvar="TCPCHAT_SERVE_KEEP_DAYS",
    help="Days a message is kept in the history file; 0 keeps them forever.",
)
@option(
    "--keep-messages",
    type=click.IntRange(0, 1_000_000_000),
    metavar="N",
    default=DEFAULT_KEEP_MESSAGES,
    envvar="TCPCHAT_SERVE_KEEP_MESSAGES",
    help="Most messages kept in the history file (the oldest go first); 0 for no limit.",
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
    "--web",
    "web_port",
    type=click.IntRange(0, 65535),
    is_flag=False,
    flag_value=DEFAULT_WEB_PORT,
    metavar="[PORT]",
    default=None,
    envvar="TCPCHAT_SERVE_WEB",
    show_default=f"off; {DEFAULT_WEB_PORT} when no port is given",
    help="Also serve the chat page for browsers (and their WebSocket) on this port, in the "
    "same room, over https with --tls (needs pip install 'tcpchat[web]').",
)
@option(
    "--web-origin",
    "web_origins",
    multiple=True,
    metavar="ORIGIN",
    envvar="TCPCHAT_SERVE_WEB_ORIGIN",
    show_default="none",
    help="Another site whose pages may use the WebSocket, as https://chat.example.org "
    "(repeatable; the server's own page always may).",
)
@option(
    "--cluster",
    metavar="REDIS_URL",
    default=None,
    envvar="TCPCHAT_SERVE_CLUSTER",
    show_default="none: this process alone",
    help="Share the room with every server given the same Redis, as redis://HOST:PORT/DB "
    "(needs pip install 'tcpchat[cluster]').",
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
    from tcpchat.server.run import LoopUnavailable, ServeError, run_server

    tls_context, fingerprint, tls_warning = _server_tls(
        options["tls"], options["tls_cert"], options["tls_key"], options["name"]
    )
    config = _server_config(options, tls_context)
    try:
        run_server(
            config,
            quiet=options["quiet"],
            log_file=options["log_file"],
            log_level=options["log_level"],
            tls_fingerprint=fingerprint,
            event_loop=options["event_loop"],
            warnings=[tls_warning] if tls_warning else [],
        )
    except LoopUnavailable as error:
        raise click.UsageError(str(error)) from None
    except ServeError as error:
        raise click.ClickException(str(error)) from None


def _server_config(options: dict[str, Any], tls_context: Any) -> ServerConfig:
    """The `ServerConfig` the options describe, in the units it counts in."""
    from tcpchat.defaults import KIB
    from tcpchat.server.config import ServerConfig

    idle_minutes = options["idle_timeout"]
    return ServerConfig(
        host=options["host"],
        port=options["port"],
        name=options["name"],
        motd=options["motd"],
        max_text=options["max_text"],
        max_clients=options["max_clients"],
        history=options["history"],
        password=options["password"],
        idle_timeout=None if idle_minutes is None else idle_minutes * 60,
        max_per_address=options["max_per_address"] or None,
        connect_rate=options["connect_rate"] or None,
        registration_timeout=options["register_timeout"],
        rate=options["rate"],
        byte_rate=options["byte_rate"] * KIB,
        outgoing_limit=options["send_buffer"] * KIB,
        tls=tls_context,
        db=_history_file(options),
        keep_days=options["keep_days"],
        keep_messages=options["keep_messages"],
        web_port=_needing(options["web_port"], "websockets", "web", "The web page"),
        web_origins=tuple(options["web_origins"]),
        cluster=_needing(options["cluster"], "redis", "cluster", "A cluster"),
    )


def _needing(value: T, package: str, extra: str, what: str) -> T:
    """`value` of an option that needs the optional `package` (`tcpchat[extra]`), once it is
    known to be installed; else one sentence and exit 1."""
    if value is not None and importlib.util.find_spec(package) is None:
        raise click.ClickException(
            f"{what} needs the {package} package: pip install 'tcpchat[{extra}]'."
        )
    return value


def _history_file(options: dict[str, Any]) -> Path | None:
    """The SQLite file `--db` or `--memory` ask for: by default one for this host and port,
    and none (memory only) for a server on a port picked at random, which nobody finds again."""
    from tcpchat.server.store.paths import default_db_path

    if options["memory"]:
        if options["db"] is not None:
            raise click.UsageError("give --db or --memory, not both.")
        return None
    if options.get("cluster"):  # a cluster's history is in Redis
        if options["db"] is not None:
            raise click.UsageError(
                "give --db or --cluster, not both: a cluster keeps its history in Redis."
            )
        return None
    if options["db"] is not None:
        return Path(options["db"])
    return default_db_path(options["host"], options["port"]) if options["port"] else None


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
