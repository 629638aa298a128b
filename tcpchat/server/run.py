"""The serve process: console, log, event loop, signals and operator commands around one server.

`tcpchat serve` builds a `ServerConfig` and calls `run_server`; everything a running process needs
beyond the server itself lives here.  It never exits the process and never decides exit codes:
what stops it from starting is a `ServeError`, one sentence the command line turns into its
message and status.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import click

from tcpchat import __version__, sockets
from tcpchat.server import console, moderation
from tcpchat.server.chat_server import ChatServer
from tcpchat.server.chat_server import serve as serve_forever
from tcpchat.server.config import ServerConfig
from tcpchat.server.messages import LogUnavailable
from tcpchat.stdin import start_feeding

if TYPE_CHECKING:
    from tcpchat.server.terminal import OperatorLine

MAX_COMMAND_LINE = 64 * 1024  # a longer console line is dropped (no command is that long)


log = logging.getLogger("tcpchat.server")


class ServeError(Exception):
    """Why the server could not start or keep running, as one sentence for the operator."""


class LoopUnavailable(ServeError):
    """The event loop asked for by name is not installed here (a wrong choice, not a failure)."""


def run_server(
    config: ServerConfig,
    *,
    quiet: bool,
    log_file: str | None,
    log_level: str,
    tls_fingerprint: str | None = None,
    event_loop: str = "asyncio",
    warnings: Sequence[str] = (),
) -> None:
    """Set up the console and the log, run the server until a stop signal, then return.

    `event_loop` is auto (uvloop where installed), asyncio or uvloop.  `warnings` are sentences
    about the set-up, shown even with `quiet` and kept in the log.
    """
    _standard_descriptors_open()
    try:
        console.setup_logging(quiet=quiet, log_file=log_file, log_level=log_level)
    except OSError as exc:
        raise ServeError(f"cannot open the log file {log_file}: {exc.strerror}.") from None
    for warning in warnings:
        logging.getLogger("tcpchat.console").warning("%s.", warning)
    _, limit_note = sockets.raise_open_file_limit()

    def started(server: ChatServer) -> None:
        log.info("%s", _started_line(server, config), extra=console.FILE_ONLY)
        all_interfaces = config.host in (None, "", "*")
        web_port = server.web_ports[0] if server.web_ports else None
        token = None if server.web is None else server.web.operator.token
        if quiet:
            where = console.listening_line(
                listening=server.addresses, port=server.ports[0], all_interfaces=all_interfaces
            )
            click.echo(where)
            join_host = console.joining_host(server.addresses, all_interfaces)
            for line in console.web_lines(join_host, web_port, config.tls is not None, token):
                click.echo(line)
            return
        text = console.welcome_text(
            server_name=config.name,
            listening=server.addresses,
            port=server.ports[0],
            all_interfaces=all_interfaces,
            max_text=config.max_text,
            max_clients=config.max_clients,
            history=config.history,
            history_file=config.db,
            keep=(config.keep_days, config.keep_messages),
            password=config.password is not None,
            tls_fingerprint=tls_fingerprint,
            idle_minutes=None if config.idle_timeout is None else config.idle_timeout / 60,
            commands=sys.stdin is not None and sys.stdin.isatty(),
            notes=[limit_note] if limit_note else [],
            web_port=web_port,
            operator_token=token,
            cluster=None
            if server.cluster is None or config.cluster is None
            else (config.cluster, server.cluster.alive),
        )
        click.echo(text)

    async def main() -> None:
        stop = asyncio.Event()
        _on_stop_signal(stop)
        operator_line: list[OperatorLine] = []

        def on_started(server: ChatServer) -> None:
            started(server)
            operator_line.extend(_take_operator_commands(server, stop.set))

        try:
            server = await serve_forever(config, stop.wait, on_started)
        finally:
            for line in operator_line:
                await line.close()
        server.door.refusals.summarise()
        log.info("tcpchat server %r stopped.", config.name, extra=console.FILE_ONLY)

    try:
        _loop_runner(event_loop)(main())
    except KeyboardInterrupt:
        pass  # a second Ctrl-C during shutdown, or Windows before the handler is in place
    except LogUnavailable as exc:  # the history file: one sentence of its own
        raise _not_started(config, str(exc)) from None
    except OSError as exc:
        raise _not_started(config, _listen_error(config.host, config.port, exc)) from None


def _started_line(server: ChatServer, config: ServerConfig) -> str:
    """The log file's first word on a run: who, which version and process, and where."""
    where = ", ".join(server.addresses)
    if server.web_ports:
        where += f"; the web page on port {server.web_ports[0]}"
    if config.cluster is not None:
        where += f"; in a cluster through {console.without_password(config.cluster)}"
    return f"tcpchat server {config.name!r} started (tcpchat {__version__}, process {os.getpid()}), listening on {where}."


def _not_started(config: ServerConfig, why: str) -> ServeError:
    """`why` the server could not start (or go on), for the command line and the log file."""
    log.error("tcpchat server %r could not start: %s", config.name, why, extra=console.FILE_ONLY)
    return ServeError(why)


def _standard_descriptors_open() -> None:
    """Give a closed standard descriptor (`tcpchat serve <&-`) /dev/null: otherwise the next
    socket or file opened takes its number, and code that means the terminal (or uvloop, which
    refuses to close descriptors 0 to 2) gets a connection instead."""
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
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable(
                "uvloop is not installed here; pip install 'tcpchat[fast]' (not on Windows)."
            ) from None
        return asyncio.run
    return uvloop.run


def _take_operator_commands(server: ChatServer, stop: Callable[[], None]) -> list[OperatorLine]:
    """Read the operator's /commands from standard input, if there is one (server.moderation):
    on a protected line of its own when the operator sits at a terminal (the line to close when
    the server stops), else line by line as they come.

    The end of input ends only the commands, never the server: under a service manager standard
    input is often /dev/null.
    """
    if sys.stdin is None:
        return []
    if _at_a_terminal():
        from tcpchat.server.terminal import OperatorLine  # prompt_toolkit: only for a person

        return [OperatorLine(server, stop)]

    def on_line(line: bytes | None) -> None:
        if line is None:
            return
        answer = moderation.carry_out(server, line.decode("utf-8", "replace"))
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
    return []


def _at_a_terminal() -> bool:
    """Whether a person types the commands: standard input and output are a terminal, and this
    process is its foreground job (`tcpchat serve &` must leave the shell its keys)."""
    try:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        if os.name != "posix":
            return True
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):  # closed, or replaced by something else
        return False


def _on_stop_signal(stop: asyncio.Event) -> None:
    """Set `stop` on Ctrl-C or SIGTERM; signal.signal where the loop cannot (Windows)."""
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
    """Why listening on `host` and `port` failed, with what to do about it."""
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
