"""`tcpchat join`: the client's options, then the chat screen on a terminal or a script otherwise.

Reading HOST as people write it and refusing contradictory trust options is parsing, done here; the
chat itself is `tcpchat.client.run.run_client`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tcpchat.cli.options import CONTEXT_SETTINGS, EXIT_CODES, complete_host, option
from tcpchat.defaults import DEFAULT_PORT

if TYPE_CHECKING:
    from tcpchat.client.connection import TlsSettings


def _complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Names used before, most recent first."""
    from tcpchat.client.recent import recent_names

    return [n for n in recent_names() if n.startswith(incomplete)]


def _fingerprint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A fingerprint in any form people paste, as the canonical `SHA256:...`."""
    if value is None:
        return None
    from tcpchat.tls import parse_fingerprint

    try:
        return parse_fingerprint(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class _WithSettingsFile(click.Command):
    """A command whose defaults the settings file changes (Click's `default_map`), so that an
    option or its environment variable still wins over the file."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        from tcpchat.client.settings import Settings, SettingsError, file_defaults, load

        try:
            settings = load()
        except SettingsError as error:
            if not extra.get("resilient_parsing"):  # shell completion goes on without the file
                raise click.ClickException(str(error)) from None
            settings = Settings()
        names = [param.name for param in self.params if param.name]
        extra.setdefault("default_map", file_defaults(settings, names))
        context = super().make_context(info_name, args, parent, **extra)
        context.meta["settings"] = settings
        return context


def _setting(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An option that is also a setting, checked as the settings file's value is."""
    from tcpchat.client.settings import SettingsError, check

    try:
        return str(check(param.name or "", value))
    except SettingsError as error:
        raise click.BadParameter(str(error)) from None


@click.command(cls=_WithSettingsFile, context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.argument("host", required=False, envvar="TCPCHAT_HOST", shell_complete=complete_host)
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
@option(
    "--time-format",
    metavar="HH:MM|HH:MM:SS",
    default="HH:MM",
    envvar="TCPCHAT_TIME_FORMAT",
    callback=_setting,
    help="How the chat screen shows the time of each line.",
)
@option(
    "--log",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    default=None,
    envvar="TCPCHAT_LOG",
    show_default="none",
    help="Append the chat screen's session to FILE as it is shown (plain text, as irssi logs).",
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
    time_format: str,
    log: str | None,
) -> None:
    """Join the chat on HOST (or HOST:PORT, [IPV6]:PORT).

    With a terminal, this is an interactive chat screen; HOST and the name are asked for when
    not given.  Otherwise (a pipe or a file) every input line is sent as a message and the
    command ends once each has been acknowledged.

    Defaults come from settings.ini in tcpchat's folder (see the README's "Settings").
    """
    from tcpchat.client.connection import ChatError
    from tcpchat.protocol import strip_unsafe

    if host:
        host, port = _join_address(host, port)
    settings = _tls_settings(tls, ca_file, fingerprint, trust_new)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not as_json
    if not interactive and not host:
        raise click.UsageError("give HOST (or set TCPCHAT_HOST) when input is not a terminal.")
    if not interactive and not name:
        raise click.UsageError("give --name (or set TCPCHAT_NAME) when input is not a terminal.")
    context = click.get_current_context()
    if not interactive and log is not None and _given(context, "log"):
        raise click.UsageError("--log is for the chat screen; a script's output is its log.")
    from tcpchat.client.run import run_client

    chosen = context.meta["settings"].overridden(context.params)
    try:
        run_client(
            host,
            port,
            name,
            password,
            settings,
            interactive=interactive,
            as_json=as_json,
            settings=chosen,
        )
    except ChatError as error:
        # Its words may come from the server: never let them drive the terminal.
        raise click.ClickException(strip_unsafe(str(error))) from None
    except KeyboardInterrupt:
        sys.exit(130)


def _given(context: click.Context, parameter: str) -> bool:
    """Whether `parameter` was given as an option or its environment variable (not by default or
    by the settings file, whose values are for the chat screen and do not stop a script)."""
    source = context.get_parameter_source(parameter)
    return source in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.ENVIRONMENT,
    )


def _tls_settings(
    tls: bool, ca_file: Path | None, fingerprint: str | None, trust_new: bool
) -> TlsSettings | None:
    """TLS settings when any TLS option is given; refuses more than one way to trust the server."""
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
    if not (tls or trusting):
        return None
    from tcpchat.client.connection import TlsSettings

    return TlsSettings(ca_file=ca_file, fingerprint=fingerprint, trust_new=trust_new)


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
    if written != port and _given(click.get_current_context(), "port"):
        raise click.UsageError(
            f"the port is given twice, and differently: {written} in HOST and {port} with "
            "--port (or TCPCHAT_PORT); give it once."
        )
    return host, written
