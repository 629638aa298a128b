"""The `join` process: the chat screen on a terminal, or the script mode otherwise."""

from __future__ import annotations

import asyncio

from tcpchat.client.settings import Settings
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
    settings: Settings | None = None,
) -> None:
    """Chat on the terminal's screen, or else send standard input's lines as a script.

    The screen asks for a missing HOST or name; a script needs both (`join` checks them first).
    Raises `ChatError` with a sentence when the chat cannot start or ends in failure.
    """

    if interactive:
        from tcpchat.client.ui.screen import run_interactive

        asyncio.run(run_interactive(host, port, name, password, tls, settings))
        return
    assert host and name, "a script is given HOST and a name"
    from tcpchat.client.script import run_script

    asyncio.run(run_script(host, port, name, password, as_json=as_json, tls=tls))
