"""What a client trusts over TLS: its contexts, the servers it pinned, and the first-use decision.

A server a certificate authority vouches for is verified as a browser would; one it does not
is pinned by its certificate's fingerprint in `known_hosts`, as ssh pins host keys, after a
person (or `--trust-new`) says yes.  `open_tls` makes that decision; the connecting itself is
the caller's (`tcpchat.client.connection` hands it a function that connects with a context).
A refused server is a `TlsRefused` with a sentence that says why and what to do.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tcpchat.client.errors import TlsRefused
from tcpchat.files import config_dir, write_atomically
from tcpchat.tls import MINIMUM_VERSION, TlsError, fingerprint, read_tls_file

KNOWN_HOSTS_FILE = "known_hosts"
# What `known_hosts` says instead of a fingerprint for a server a certificate authority vouched for.
CA_VERIFIED = "ca"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# Opens a connection with the context given; leaves ssl.SSLCertVerificationError to the caller
# and raises TlsRefused (NotTlsServer for an answer that is not TLS) for other handshake failures.
Connect = Callable[[ssl.SSLContext], Awaitable[Streams]]


def client_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's certificate authorities, or only those in
    `ca_file` (a private CA, or a server's own self-signed certificate)."""
    if ca_file is None:
        context = ssl.create_default_context()
    else:
        path = Path(ca_file)
        read_tls_file(path, "CA")
        try:
            context = ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:
            raise TlsError(
                f"cannot use {path} as certificate authorities ({exc.reason or exc})."
            ) from None
        if not context.cert_store_stats()["x509"]:
            raise TlsError(
                f"{path} holds no certificate in PEM form (-----BEGIN CERTIFICATE-----)."
            )
    context.minimum_version = MINIMUM_VERSION
    return context


def pinning_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: only for a connection whose certificate
    we then compare with a pinned fingerprint before sending a byte."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = MINIMUM_VERSION
    return context


def host_key(host: str, port: int) -> str:
    """`host:port` as people write it: IPv6 in brackets, host names in lower case."""
    host = host.strip().lower().rstrip(".") or host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class NewCertificate:
    """A certificate no authority vouches for, from a server not met before: trusted only when
    the person says so after comparing its fingerprint (or `--trust-new` says so for them)."""

    address: str
    fingerprint: str
    reason: str  # why it could not be verified, as OpenSSL puts it

    def question(self) -> str:
        """What a person reads before being asked, as ssh shows a new host key."""
        return (
            f"{self.address} has a certificate no authority vouches for ({self.reason}), and "
            f"tcpchat has not met this server before. Its fingerprint is {self.fingerprint}: "
            "compare it with the one the server printed before you trust it."
        )

    def refusal(self) -> str:
        """Why nothing was sent when there was nobody to ask (a script), and what to do."""
        return (
            f"{self.address} has a certificate no authority vouches for ({self.reason}) and "
            "tcpchat has not met this server before, so nothing was sent to it; compare its "
            f"fingerprint {self.fingerprint} with the one the server printed, then join with "
            f"--fingerprint {self.fingerprint}, or with --trust-new to trust the certificate "
            "the server presents the first time."
        )


@dataclass(frozen=True, slots=True)
class NewPin:
    """A server whose certificate no authority vouches for, trusted on first use."""

    address: str
    fingerprint: str
    reason: str  # why it could not be verified, as OpenSSL puts it
    saved_in: Path | None  # None when known_hosts could not be written
    problem: str | None = None  # why it could not, then
    asked: bool = False  # the person was shown the fingerprint and said yes

    def notice(self) -> str:
        """What the person is told: compare (unless they just did), and what a change means."""
        if self.asked:
            text = f"Trusting the certificate of {self.address}."
        else:
            text = (
                f"{self.address} has a certificate no authority vouches for ({self.reason}); "
                f"trusting it on first use. Its fingerprint is {self.fingerprint}: compare it "
                "with the one the server printed."
            )
        if self.saved_in is not None:
            return f"{text} Remembered in {self.saved_in}; tcpchat will refuse this server if it ever changes."
        return (
            f"{text} It could not be remembered ({self.problem}), so it will be asked about again."
        )


@dataclass
class KnownHosts:
    """Servers met before, in `known_hosts` in tcpchat's folder, one a line, as SSH's:
    `HOST:PORT SHA256:…` for a certificate pinned on first use, `HOST:PORT ca` for one that a
    certificate authority vouched for (so its later switch to an unverifiable one is refused
    rather than pinned).  Read afresh for every question: another client may have written it.
    """

    path: Path = field(default_factory=lambda: config_dir() / KNOWN_HOSTS_FILE)

    def entries(self) -> dict[str, str]:
        """Every `host:port` and what is known of it; no file knows nothing.

        A file that exists but cannot be read raises TlsError: treating it as empty would
        trust a changed certificate on "first use" and then overwrite every other pin.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not text"
            raise TlsError(
                f"cannot read the pinned certificates in {self.path} ({why}); fix or delete it."
            ) from None
        found: dict[str, str] = {}
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and not words[0].startswith("#"):
                found[words[0]] = words[1]
        return found

    def get(self, host: str, port: int) -> str | None:
        """The pinned fingerprint, `CA_VERIFIED`, or None for a server not met before."""
        return self.entries().get(host_key(host, port))

    def pin(self, host: str, port: int, fingerprint: str) -> None:
        """Remember a self-signed certificate; raises TlsError when the file cannot be written."""
        self._set(host_key(host, port), fingerprint)

    def mark_verified(self, host: str, port: int) -> None:
        """Remember that a certificate authority vouched for this server; failures are ignored
        (it only makes a later downgrade be pinned instead of refused)."""
        key = host_key(host, port)
        if self.entries().get(key) == CA_VERIFIED:
            return
        try:
            self._set(key, CA_VERIFIED)
        except TlsError:
            pass

    def _set(self, key: str, value: str) -> None:
        entries = self.entries()
        entries[key] = value
        lines = [
            "# Servers tcpchat has met: HOST:PORT and the certificate's fingerprint (pinned on",
            "# first use), or 'ca' (verified by a certificate authority). Delete a server's line",
            "# if its certificate changed on purpose.",
            *(f"{address} {known}" for address, known in entries.items()),
        ]
        try:
            write_atomically(self.path, "\n".join(lines) + "\n")
        except OSError as exc:
            raise TlsError(f"cannot write {self.path}: {exc.strerror or exc}.") from None


@dataclass(frozen=True)
class TlsSettings:
    """How a client trusts a TLS server (`join --tls`, `--ca`, `--fingerprint`,
    `--trust-new`)."""

    ca_file: Path | None = None  # verify with only these authorities, never pin instead
    fingerprint: str | None = None  # canonical (tls.parse_fingerprint): accept only this one
    known_hosts: KnownHosts = field(default_factory=KnownHosts)
    # A certificate no authority vouches for, from a server not met before, is pinned when
    # `trust_new` is set or `ask` (a question to the person) says yes; else it is refused.
    trust_new: bool = False
    ask: Callable[[NewCertificate], Awaitable[bool]] | None = None


# --- the decision ---------------------------------------------------------------------------


def met_over_tls(host: str, port: int) -> bool:
    """Whether known_hosts has this server (pinned, or vouched for by an authority).

    A known_hosts that cannot be read raises TlsRefused: joining in clear could send the
    password to a server that was pinned there.
    """
    try:
        return KnownHosts().get(host, port) is not None
    except TlsError as error:
        raise TlsRefused(str(error)) from None


def no_longer_tls(host: str, port: int, known_hosts: KnownHosts) -> str:
    """Why a server met over TLS before is refused when it answers in clear, and what to do."""
    address = host_key(host, port)
    return (
        f"{address} does not answer in TLS, but tcpchat met it over TLS before (it is in "
        f"{known_hosts.path}), so tcpchat will not join it without TLS: someone may be in the "
        f"way. If the server stopped using TLS on purpose, delete the line for {address} from "
        f"{known_hosts.path} and join again."
    )


def _offered(streams: Streams) -> str:
    """The fingerprint of the certificate the server presented on this connection."""
    ssl_object = streams[1].get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        streams[1].transport.abort()
        raise TlsRefused("the server presented no TLS certificate; not connecting.")
    return fingerprint(der)


async def _connect_pinned(
    connect: Connect, expected: str, mismatch: Callable[[str], str]
) -> Streams:
    """A TLS connection whose certificate has the fingerprint `expected`, checked before a byte
    of ours is sent; else TlsRefused with `mismatch(offered)`."""
    streams = await connect(pinning_context())
    offered = _offered(streams)
    if offered != expected:
        streams[1].transport.abort()
        raise TlsRefused(mismatch(offered))
    return streams


async def open_tls(
    host: str, port: int, settings: TlsSettings, connect: Connect
) -> tuple[Streams, NewPin | None]:
    """Connect over TLS (with `connect`, given the context to use) and decide whether to trust
    the server: a fingerprint given, else one pinned before, else the certificate authorities,
    else the server's certificate pinned on first use once the person (or `--trust-new`)
    accepted it.

    A pinned certificate is checked before a byte of ours is sent, so a refused server never
    sees the password.
    """
    address = host_key(host, port)
    known_hosts = settings.known_hosts
    if settings.fingerprint is not None:
        given = settings.fingerprint
        streams = await _connect_pinned(
            connect, given,
            lambda offered: (
                f"{address} presented the certificate {offered}, not {given} as given with "
                "--fingerprint; someone may be intercepting the connection, so tcpchat refuses it."
            ),
        )  # fmt: skip
        return streams, None
    try:
        known = known_hosts.get(host, port)
    except TlsError as error:
        raise TlsRefused(str(error)) from None
    if known is not None and known != CA_VERIFIED and settings.ca_file is None:  # --ca decides
        pinned = known
        streams = await _connect_pinned(
            connect, pinned,
            lambda offered: (
                f"the certificate of {address} has changed! It was {pinned} when tcpchat first "
                f"met this server; now it is {offered}. Someone may be intercepting the "
                "connection, so tcpchat refuses it. If the server's certificate was changed on "
                f"purpose, delete the line for {address} from {known_hosts.path} and join again."
            ),
        )  # fmt: skip
        return streams, None
    try:
        context = client_context(settings.ca_file)
    except TlsError as exc:
        raise TlsRefused(str(exc)) from None
    try:
        streams = await connect(context)
    except ssl.SSLCertVerificationError as exc:
        reason = (exc.verify_message or exc.reason or "not verified").rstrip(".")
        if settings.ca_file is not None:
            raise TlsRefused(
                f"the certificate of {address} cannot be verified with {settings.ca_file} "
                f"({reason}); not connecting."
            ) from None
        if known == CA_VERIFIED:
            raise TlsRefused(
                f"{address} had a certificate verified by a certificate authority before, but "
                f"now its certificate cannot be verified ({reason}). Someone may be intercepting "
                "the connection, so tcpchat refuses it. If the server switched to a self-signed "
                "certificate on purpose, join with --fingerprint (the one the server printed), "
                f"or delete the line for {address} from {known_hosts.path} and join again."
            ) from None
        return await _trust_on_first_use(host, port, settings, reason, connect)
    known_hosts.mark_verified(host, port)
    return streams, None


async def _trust_on_first_use(
    host: str, port: int, settings: TlsSettings, reason: str, connect: Connect
) -> tuple[Streams, NewPin]:
    """A server not met before whose certificate no authority vouches for: pinned when
    `--trust-new` says so or the person, shown its fingerprint, says yes; refused otherwise.

    The connection that showed the certificate is dropped before a person is asked (nothing
    is held open while they compare), and the one made after a yes must present the very
    certificate they accepted.
    """
    streams = await connect(pinning_context())
    certificate = NewCertificate(host_key(host, port), _offered(streams), reason)
    address, accepted = certificate.address, certificate.fingerprint
    asked = not settings.trust_new
    if asked:
        streams[1].transport.abort()
        if settings.ask is None:
            raise TlsRefused(certificate.refusal())
        if not await settings.ask(certificate):
            raise TlsRefused(
                f"you did not trust the certificate of {address}, so nothing was sent to it."
            )
        streams = await _connect_pinned(
            connect, accepted,
            lambda offered: (
                f"{address} presented the certificate {offered}, not {accepted} that you "
                "trusted a moment ago; someone may be intercepting the connection, so tcpchat "
                "refuses it."
            ),
        )  # fmt: skip
    known_hosts = settings.known_hosts
    try:
        known_hosts.pin(host, port, accepted)
    except TlsError as problem:
        why = str(problem).rstrip(".")
        return streams, NewPin(address, accepted, reason, None, why, asked=asked)
    return streams, NewPin(address, accepted, reason, known_hosts.path, asked=asked)
