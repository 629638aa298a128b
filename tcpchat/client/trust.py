"""What a client trusts over TLS: its contexts, the servers it pinned, and the first-use decision.

A server a certificate authority vouches for is verified as a browser would; one it does not
is pinned by its certificate's fingerprint in `known_hosts`, as ssh pins host keys, after a
person (or `--trust-new`) says yes.  No sockets here: `tcpchat.client.connection` connects and
asks these what to do.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from tcpchat.files import config_dir, write_atomically
from tcpchat.tls import MINIMUM_VERSION, TlsError, read_tls_file

KNOWN_HOSTS_FILE = "known_hosts"
# What `known_hosts` says instead of a fingerprint for a server a certificate authority vouched for.
CA_VERIFIED = "ca"


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
