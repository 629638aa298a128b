"""`tcpchat history`: copy or wipe a server's history file (the server may be running)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES, option
from tcpchat.defaults import DEFAULT_PORT


def _where(function: click.decorators.FC) -> click.decorators.FC:
    """The options that find the file: --db, or the address and port `serve` used."""
    for decorator in reversed(
        [
            option(
                "--db",
                type=click.Path(dir_okay=False, path_type=Path),
                metavar="FILE",
                default=None,
                envvar="TCPCHAT_HISTORY_DB",
                show_default="the file `tcpchat serve` keeps for --host and --port",
                help="The history file, as given to `tcpchat serve --db`.",
            ),
            option(
                "--host",
                default=None,
                metavar="ADDRESS",
                envvar="TCPCHAT_HISTORY_HOST",
                show_default="every interface",
                help="The address the server listens on, which names its file.",
            ),
            option(
                "--port",
                "-p",
                type=click.IntRange(1, 65535),
                metavar="PORT",
                default=DEFAULT_PORT,
                envvar="TCPCHAT_HISTORY_PORT",
                help="The port the server listens on, which names its file.",
            ),
        ]
    ):
        function = decorator(function)
    return function


def _file(db: Path | None, host: str | None, port: int) -> Path:
    from tcpchat.server.store import default_db_path

    return db if db is not None else default_db_path(host, port)


@click.group(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
def history() -> None:
    """Copy or wipe a server's history (the messages `tcpchat serve` keeps)."""


@history.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT")
@_where
def export(out: Path, db: Path | None, host: str | None, port: int) -> None:
    """Copy the history to the new file OUT, consistently even while the server runs."""
    from tcpchat.server.store.upkeep import UpkeepError, export_file
    from tcpchat.words import counted

    source = _file(db, host, port)
    try:
        copied = export_file(source, out)
    except UpkeepError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Copied {counted(copied, 'message')} from {source} to {out}.")


@history.command(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@_where
@option(
    "--yes",
    "-y",
    is_flag=True,
    default=False,
    envvar="TCPCHAT_HISTORY_YES",
    help="Wipe without asking (needed when input is not a terminal).",
)
def wipe(db: Path | None, host: str | None, port: int, yes: bool) -> None:
    """Delete every message in the history, keeping where `seq` goes on.

    A running server still shows joiners the messages it holds in memory until it restarts:
    stop it first for a clean slate.
    """
    from tcpchat.server.store.upkeep import UpkeepError, count_messages, wipe_file
    from tcpchat.words import counted

    target = _file(db, host, port)
    try:
        kept = count_messages(target)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("give --yes to wipe when input is not a terminal.")
            click.confirm(f"Delete {counted(kept, 'message')} in {target}?", abort=True)
        deleted = wipe_file(target)
    except UpkeepError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Deleted {counted(deleted, 'message')} from {target}.")
