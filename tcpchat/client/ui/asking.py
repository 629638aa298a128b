"""The questions before the chat screen starts: which server, which name, a password, and
whether to trust a certificate not met before; and the first join, which asks them.

Each is a prompt of its own (not the chat screen's), answered with Enter; problems are said as
sentences between them.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, replace
from functools import partial

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText

from tcpchat.client import recent
from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    JoinRefused,
    TlsRefused,
    TlsSettings,
    split_address,
)
from tcpchat.client.trust import NewCertificate
from tcpchat.client.ui.render import STYLE, Fragments, render_notice, render_problem
from tcpchat.defaults import DEFAULT_PORT
from tcpchat.protocol import ErrorCode, Welcome, fold_name, name_problem, normalize_name

PASSWORD_TRIES = 3


@dataclass(frozen=True)
class Joined:
    """Where the first join went, with the answers to the questions it asked."""

    host: str
    port: int
    password: str | None
    connection: ChatConnection
    welcome: Welcome

    @property
    def address(self) -> str:
        return written_address(self.host, self.port)


def say(fragments: Fragments) -> None:
    """One line between the questions, in the chat screen's colours."""
    print_formatted_text(FormattedText(fragments), style=STYLE)


def default_name() -> str:
    """The login name, if it is a valid chat name."""
    try:
        login = normalize_name(getpass.getuser())
    except Exception:  # getuser can fail in odd environments; the person types a name instead
        return ""
    return "" if name_problem(login) else login


async def ask(
    session: PromptSession[str], question: str, default: str = "", *, secret: bool = False
) -> str:
    """The answer to `question`; Enter alone takes `default`, shown in brackets (not typed in
    for the person, where what they type would be added to it)."""
    offer = f" [{default}]" if default else ""
    try:
        answer = await session.prompt_async(f"{question}{offer}: ", is_password=secret)
    except EOFError:
        raise KeyboardInterrupt from None  # the person gave up: leave quietly, as Ctrl-C does
    return answer.strip() or default


async def open_connection(host: str, port: int, tls: TlsSettings | None) -> ChatConnection:
    """Connect, telling the person when a certificate was trusted on first use."""
    connection = await ChatConnection.open(host, port, tls=tls)
    if connection.new_pin is not None:
        say(render_notice(connection.new_pin.notice()))
    return connection


async def trust_certificate(session: PromptSession[str], certificate: NewCertificate) -> bool:
    """Ask, as ssh does for a new host key: its fingerprint, then `yes` to trust it."""
    say(render_notice(certificate.question()))
    return (await ask(session, "Trust it and join (yes/no)")).lower() == "yes"


async def ask_for_server(
    session: PromptSession[str], port: int, tls: TlsSettings | None
) -> tuple[str, int, ChatConnection]:
    """Ask for the server (`HOST` or `HOST:PORT`) until one answers: one that cannot be read,
    found or reached is asked for again with the reason.

    A certificate refused is no typo: that ends here, as it would for a host given.
    """
    offer = (recent.recent_hosts() or ["127.0.0.1"])[0]
    while True:
        typed = await ask(session, "Server host", offer)
        if not typed:
            continue
        try:
            host, written = split_address(typed)
        except ValueError as problem:
            say_problem(str(problem))
            continue
        try:
            return host, written or port, await open_connection(host, written or port, tls)
        except TlsRefused:
            raise
        except ChatError as problem:
            say_problem(str(problem))


def say_problem(sentence: str) -> None:
    """A problem before the chat screen starts, as a sentence of its own."""
    text = f"{sentence[:1].upper()}{sentence[1:]}"
    say(render_problem(text))


def written_address(host: str, port: int) -> str:
    """The server as the host prompt and shell completion offer it next time."""
    if port == DEFAULT_PORT:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def name_to_offer(refused: set[str]) -> str:
    """The name prompt's default: the latest name used, else the login name, passing over names
    the server just refused (offering one again would only be refused again); else nothing."""
    candidates = [*recent.recent_names(), default_name()]
    return next((name for name in candidates if name and fold_name(name) not in refused), "")


async def join(
    host: str | None, port: int, name: str | None, password: str | None, tls: TlsSettings | None
) -> Joined:
    """Ask for what is missing, connect, join: asking again for a name taken and, a few times,
    for a password refused; the server and the name are remembered for next time."""
    asker: PromptSession[str] = PromptSession()
    # Only the first connection may ask about a new certificate: the chat screen's reconnects
    # cannot stop to ask, and by then the certificate is pinned.
    asking = None if tls is None else replace(tls, ask=partial(trust_certificate, asker))
    if host:
        connection = await open_connection(host, port, asking)
    else:
        host, port, connection = await ask_for_server(asker, port, asking)
    password_tries = 0
    refused_names: set[str] = set()
    while True:
        while not name:
            name = await ask(asker, "Your name", name_to_offer(refused_names))
        try:
            welcome = await connection.join(name, password)
            break
        except JoinRefused as refused:
            code = refused.error.code
            if refused.can_retry:
                say(render_problem(str(refused)))
                refused_names.add(fold_name(name))
                name = None
                continue
            await connection.close()
            if code is ErrorCode.AUTH_FAILED and password_tries < PASSWORD_TRIES:
                if password is not None:
                    say(render_problem(str(refused)))
                password_tries += 1
                password = await ask(asker, "This server needs a password", secret=True)
                connection = await open_connection(host, port, asking)
                continue
            raise ChatError(f"could not join: {refused}") from None
        except BaseException:
            await connection.close()
            raise
    joined = Joined(host, port, password, connection, welcome)
    recent.remember(joined.address, welcome.name)
    return joined
