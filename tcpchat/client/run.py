"""The `join` process: the chat screen on a terminal, or the script mode otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tcpchat.client.errors import ChatError
from tcpchat.client.trust import TlsSettings


def run_client(
    host: str | None,
    port: int,
    name: str | None,
    password: str | None,
    tls: TlsSettings | None,
    *,
    interactive: bool,
    as_json: bool,
    log: Path | None = None,
) -> None:
    """Chat on the terminal's screen, or else send standard input's lines as a script.

    The screen asks for a missing HOST or name; a script needs both (`join` checks them first).
    `log`: the chat screen's session is appended to this file as it is shown.
    Raises `ChatError` with a sentence when the chat cannot start or ends in failure.
    """

    if interactive:
        from tcpchat.client.session_log import SessionLog
        from tcpchat.client.ui.screen import run_interactive

        try:
            session_log = None if log is None else SessionLog.open(log)
        except OSError as problem:
            raise ChatError(f"cannot write the log {log}: {problem.strerror or problem}.") from None
        try:
            asyncio.run(run_interactive(host, port, name, password, tls, session_log))
        finally:
            if session_log is not None:
                session_log.close()
        return
    assert host and name, "a script is given HOST and a name"
    from tcpchat.client.script import run_script

    asyncio.run(run_script(host, port, name, password, as_json=as_json, tls=tls))
