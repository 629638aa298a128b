"""What the person who started the server sees, and its log file.

Both are standard `logging`: the console gets one short timestamped line per join, leave and
message (a message shortened by `console_text`); `--log-file` gets full records (level, logger,
client addresses, tracebacks).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import stat
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tcpchat.protocol import DEFAULT_PORT
from tcpchat.words import counted

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "[%(asctime)s] %(message)s"


CONSOLE_LINES = 3  # lines of one message shown on the console


def console_text(text: str) -> str:
    """A message for the console: continuation lines indented (so none passes for a console line
    of ours) and at most CONSOLE_LINES of them (so one paste cannot flood the operator)."""
    lines = text.split("\n")
    shown = "\n    ".join(lines[:CONSOLE_LINES])
    if len(lines) > CONSOLE_LINES:
        shown += f"\n    (+{len(lines) - CONSOLE_LINES} more lines)"
    return shown


# `extra` of a record meant for the log file alone (the console says the same its own way).
FILE_ONLY = {"file_only": True}


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that keeps going when the terminal goes away (a closed pipe).

    Without a stream of its own it writes to standard output as it is at each record: the
    operator's line (tcpchat.server.terminal) replaces it with one that prints above that line.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._own = stream

    @property
    def stream(self) -> TextIO:
        return self._own or sys.stdout

    @stream.setter
    def stream(self, stream: TextIO) -> None:
        self._own = stream

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


def setup_logging(
    *, quiet: bool, log_file: str | None, log_level: str, stream: TextIO | None = None
) -> None:
    """Send `tcpchat` records to the console (INFO, or WARNING with `quiet`) and to `log_file`
    (records with FILE_ONLY there only)."""
    logger = logging.getLogger("tcpchat")
    logger.handlers.clear()
    logger.propagate = False
    console = _StreamHandler(stream)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.addFilter(_not_file_only)
    logger.addHandler(console)
    level = logging.getLevelName(log_level.upper())
    logger.setLevel(min(level, console.level) if log_file else console.level)
    if log_file:
        file_handler = _LogFileHandler(log_file, console)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_handler.setLevel(level)
        logger.addHandler(file_handler)


class _LogFileHandler(logging.FileHandler):
    """`--log-file`: created readable by its owner only, and kept going through write failures.

    A full disk must not turn every record into a traceback on the console (logging's own
    `handleError`): the first failure is one warning on the console, later records are dropped
    quietly, and the first record written again says how many were lost.  After a failure the
    file is reopened for the next record, so a log file deleted or moved away is made anew.
    """

    def __init__(self, path: str, console: logging.Handler) -> None:
        self._console = console
        self._lost = 0  # records dropped since the file stopped taking them
        self._warned_mode = False
        super().__init__(path, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._make_private(fd)
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise

    def _make_private(self, fd: int) -> None:
        """Take other users' access away from a file made before (O_CREAT's 0600 is only for
        new files): it holds client addresses.  Someone else's file is left alone, with a warning."""
        if os.name != "posix":
            return  # Windows: files are private by their folder's access list, not a mode
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode) or not mode & 0o077:
            return  # a device such as /dev/null is nobody's secret
        why = "it belongs to another user"
        if info.st_uid == os.getuid():
            try:
                os.fchmod(fd, mode & ~0o077)
                return
            except OSError as exc:  # a file system that keeps no modes, say
                why = exc.strerror or str(exc)
        if not self._warned_mode:
            self._warned_mode = True
            self._warn(
                f"other users may read the log file {self.baseFilename} (mode {mode:04o}), and "
                f"tcpchat cannot make it private ({why}); it will hold client addresses."
            )

    def emit(self, record: logging.LogRecord) -> None:
        recovered = None
        try:
            stream = self.stream = self.stream or self._open()
            text = self.format(record) + self.terminator
            if self._lost:
                recovered = self._warning(
                    f"the log file {self.baseFilename} can be written again; "
                    f"{counted(self._lost, 'record')} could not be written to it."
                )
                text = self.format(recovered) + self.terminator + text
            stream.write(text)
            stream.flush()
        except OSError as exc:
            self._failed(exc)
            return
        except Exception:  # a record that cannot be formatted: logging's own report
            self.handleError(record)
            return
        if recovered is not None:
            self._lost = 0
            self._console.handle(recovered)

    def _failed(self, exc: OSError) -> None:
        stream, self.stream = self.stream, None  # reopened for the next record
        if stream is not None:
            try:
                stream.close()  # drops what is still buffered: it is counted as lost
            except OSError:
                pass
        if not self._lost:
            self._warn(
                f"cannot write to the log file {self.baseFilename} "
                f"({exc.strerror or exc}); its records are dropped until it can be written again."
            )
        self._lost += 1

    def _warning(self, message: str) -> logging.LogRecord:
        """A warning record about this file, made here because the file may be what fails."""
        record = logging.makeLogRecord(
            {"name": "tcpchat.console", "levelno": logging.WARNING, "levelname": "WARNING"}
        )
        record.msg = message
        return record

    def _warn(self, message: str) -> None:
        self._console.handle(self._warning(message))


def local_addresses() -> list[str]:
    """This machine's addresses as the resolver knows them, for the "how to join" lines."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    for info in infos:
        address = str(info[4][0])
        if address not in found and not address.startswith("fe80"):
            found.append(address)
    return found


def listening_line(*, listening: Sequence[str], port: int, all_interfaces: bool) -> str:
    """`Listening on 127.0.0.1, port 4000.`: the one line that says where to connect.

    Printed even with `--quiet`, where it is all the welcome there is, so that a server started
    on port 0 by a script can still be found; keep its form for the scripts that read it.
    """
    listening_hosts = [address.rsplit(":", 1)[0] for address in listening]  # "host:port" each
    where = "every interface (IPv4 and IPv6)" if all_interfaces else ", ".join(listening_hosts)
    return f"Listening on {where}, port {port}."


def kept_where(history_file: Path | None, keep_days: int, keep_messages: int) -> str:
    """Where the history is kept, and for how long (0: no limit)."""
    if history_file is None:
        return "History is kept in memory only: it is gone when the server stops."
    limits = [f"{counted(keep_days, 'day')}" if keep_days else "forever"]
    if keep_messages:
        limits.append(f"at most {keep_messages:,} messages")
    return f"History is kept in {history_file} ({', '.join(limits)})."


def without_password(url: str) -> str:
    """A Redis URL as the console may show it: its password (if any) left out."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + '@' if parts.username else ''}{host}"
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def joining_host(listening: Sequence[str], all_interfaces: bool) -> str:
    """The host name people join with: this machine's name when every interface listens."""
    if all_interfaces:
        return socket.gethostname()
    return listening[0].rsplit(":", 1)[0].strip("[]")  # "host:port" each


def web_lines(host: str, web_port: int | None, tls: bool, operator_token: str | None) -> list[str]:
    """Where the chat page is, and the operator's page with its secret (for the operator only)."""
    if web_port is None:
        return []
    base = f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{web_port}/"
    lines = [f"Or open in a browser:  {base}"]
    if operator_token is not None:
        lines.append(
            f"The operator's page (keep this link to yourself):  {base}admin#{operator_token}"
        )
    return lines


def welcome_text(
    *,
    server_name: str,
    listening: Sequence[str],
    port: int,
    all_interfaces: bool,
    max_text: int,
    max_clients: int | None,
    history: int,
    history_file: Path | None = None,
    keep: tuple[int, int] = (0, 0),
    password: bool = False,
    tls_fingerprint: str | None = None,
    idle_minutes: float | None = None,
    commands: bool = False,
    notes: Sequence[str] = (),
    web_port: int | None = None,
    operator_token: str | None = None,
    cluster: tuple[str, int] | None = None,
) -> str:
    """The start-up message: who we are, where we listen, how to join, and how to stop."""
    hosts = (
        [a for a in local_addresses() if not a.startswith(("127.", "::1"))]
        if all_interfaces
        else []
    )
    join_host = joining_host(listening, all_interfaces)
    port_part = "" if port == DEFAULT_PORT else f" --port {port}"
    lines = [
        f"Welcome! tcpchat server {server_name!r} is running.",
        "  " + listening_line(listening=listening, port=port, all_interfaces=all_interfaces),
    ]
    if hosts:
        lines.append(f"  This machine's addresses: {', '.join(hosts)}.")
    if tls_fingerprint is None:
        join_line = f"tcpchat join {join_host}{port_part}    or    nc {join_host} {port}"
    else:
        join_line = (
            f"tcpchat join {join_host}{port_part} --tls    or    "
            f"openssl s_client -quiet -connect {join_host}:{port}"
        )
    members = (
        "no member limit" if max_clients is None else f"at most {counted(max_clients, 'member')}"
    )
    shown = (
        "no history" if history == 0 else f"the last {counted(history, 'message')} shown to joiners"
    )
    lines.append(f"  Join with:  {join_line}")
    lines += [
        f"  {line}"
        for line in web_lines(join_host, web_port, tls_fingerprint is not None, operator_token)
    ]
    lines += [
        f"  Messages up to {counted(max_text, 'character')}; {members}; {shown}.",
        f"  {kept_where(history_file, *keep)}",
    ]
    if tls_fingerprint is not None:
        lines.append(f"  Every connection is TLS. Certificate fingerprint: {tls_fingerprint}")
        lines.append("  (people joining can compare it with the one their client shows).")
    if password:
        lines.append("  Members need the password (--password) to join.")
    if idle_minutes is not None:
        lines.append(
            f"  Members silent for {counted(idle_minutes, 'minute')} are warned, then removed."
        )
    if cluster is not None:
        url, alive = cluster
        lines.append(
            f"  Part of a cluster through {without_password(url)}: "
            f"{counted(alive, 'process', 'processes')} alive, this one included."
        )
    lines += [f"  Note: {note}." for note in notes]
    if commands:
        lines.append("  Type /help for the operator's commands (/who, /say, /kick, /ban).")
    lines.append("  Press Ctrl-C to stop.")
    return "\n".join(lines)
