"""TLS for tcpchat: the server's context, a self-signed certificate, and fingerprints.

No sockets here: the server hands its context to asyncio.  What a client trusts (pinned
servers, the first-use decision, its contexts) is `tcpchat.client.trust`, built on the
fingerprints and file reading here.  Every failure a person can cause or meet is a
`TlsError` whose text is a sentence for them.  `cryptography` is imported only to make a
certificate, so `tcpchat --help` and `join` stay fast.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import os
import re
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from tcpchat.files import write_atomically

if TYPE_CHECKING:
    from cryptography import x509

# TLS 1.0 and 1.1 are deprecated (RFC 8996); 1.2 is what every current client can do.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
# Ten years: a self-signed certificate is trusted by its fingerprint, not its dates, and every
# renewal would make each member's client refuse the server as a changed certificate.
SELF_SIGNED_DAYS = 3650
PREFIX = "SHA256:"


class TlsError(Exception):
    """TLS could not be set up, or a certificate was refused; `str()` is for a person."""


def fingerprint(der: bytes) -> str:
    """`SHA256:` and the unpadded base64 of the certificate's SHA-256, as `ssh-keygen -l` shows
    keys: shorter to compare by eye than hex, and a form people have met before."""
    digest = hashlib.sha256(der).digest()
    return PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")


_OPENSSL_PREFIX = re.compile(r"sha-?256\s+fingerprint\s*=\s*", re.IGNORECASE)
_HEX = re.compile(r"(?:[0-9a-f]{2}:){31}[0-9a-f]{2}|[0-9a-f]{64}", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{43}=?")
_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def parse_fingerprint(text: str) -> str:
    """The canonical `SHA256:…` form of a fingerprint a person typed or pasted.

    Takes our own form and the hex that `openssl x509 -noout -fingerprint -sha256` prints (with
    or without its `sha256 Fingerprint=` prefix and colons, any case), so the server's operator
    can hand out whichever they have.  Raises ValueError with a sentence otherwise.
    """
    value = _OPENSSL_PREFIX.sub("", text.strip(), count=1)
    if value[: len(PREFIX)].upper() == PREFIX:
        value = value[len(PREFIX) :]
    spaced = value.replace(" ", ":")  # hex pairs copied from a report with spaces between
    if _HEX.fullmatch(spaced):
        digest = bytes.fromhex(spaced.replace(":", ""))
    elif _BASE64.fullmatch(value):
        digest = base64.b64decode(value.rstrip("=") + "=")
    else:
        raise ValueError(
            "a fingerprint is SHA256: and 43 base64 characters, or the 64 hex digits that "
            "openssl prints (colons allowed)."
        )
    return PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")


def read_tls_file(path: Path, what: str) -> bytes:
    """The bytes of `path`, or a TlsError that names the file and says what is wrong with it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"the TLS {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise TlsError(f"the TLS {what} file {path} is a folder, not a file.") from None
    except PermissionError:
        raise TlsError(f"you may not read the TLS {what} file {path}.") from None
    except OSError as exc:
        raise TlsError(f"cannot read the TLS {what} file {path}: {exc.strerror or exc}.") from None


def _encrypted_key(key_file: Path) -> str:
    """Called by OpenSSL only for a key with a passphrase: refuse instead of prompting for it."""
    raise TlsError(
        f"the TLS key in {key_file} is protected by a passphrase; give a key without one "
        f"(for example: openssl pkey -in {key_file} -out plain-key.pem)."
    )


def server_context(
    cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]
) -> ssl.SSLContext:
    """A server context for a certificate (chain) and its key, TLS 1.2 or newer."""
    cert_path, key_path = Path(cert_file), Path(key_file)
    if b"-----BEGIN CERTIFICATE-----" not in read_tls_file(cert_path, "certificate"):
        raise TlsError(
            f"{cert_path} holds no certificate in PEM form (-----BEGIN CERTIFICATE-----)."
        )
    if b"PRIVATE KEY-----" not in read_tls_file(key_path, "key"):
        raise TlsError(
            f"{key_path} holds no private key in PEM form (-----BEGIN PRIVATE KEY-----)."
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert_path, key_path, password=lambda: _encrypted_key(key_path))
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(
                f"the TLS key in {key_path} does not belong to the certificate in {cert_path}."
            ) from None
        if "PEM lib" in str(exc) or exc.library == "PEM":  # OpenSSL's words for a damaged file
            raise TlsError(
                f"cannot read {cert_path} or {key_path}: a certificate or key in it is damaged."
            ) from None
        raise TlsError(
            f"cannot use {cert_path} and {key_path} as a TLS certificate and key "
            f"({exc.reason or exc})."
        ) from None
    except OSError as exc:  # the file changed between the checks and the load
        raise TlsError(f"cannot read the TLS certificate or key: {exc.strerror or exc}.") from None
    return context


def key_exposure(key_file: str | os.PathLike[str]) -> str | None:
    """A warning when users other than the owner may read the server's private key, else None.

    Whoever reads the key can pose as this server, so, as ssh does for its keys, say so; but
    only say so: a group-readable key (`ssl-cert`) may be someone's deliberate choice.  POSIX
    modes only: on Windows a file's access list decides, which a mode does not show.
    """
    if os.name != "posix":
        return None
    try:
        mode = stat.S_IMODE(os.stat(key_file).st_mode)
    except OSError:
        return None  # server_context says what is wrong with the file
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"other users of this machine can read the TLS key file {key_file} (mode {mode:04o}), "
        f"and whoever reads it can pose as this server: run chmod 600 {key_file} to keep "
        "it to yourself"
    )


def self_signed_certificate(folder: Path, hostname: str) -> tuple[Path, Path]:
    """`tls-cert.pem` and `tls-key.pem` in `folder`, made on first use and kept afterwards.

    Kept, because members pin the certificate's fingerprint: a new one each start would look
    like an attack to every client.  ECDSA P-256, which every TLS client (openssl s_client too)
    accepts.  The key is created readable by its owner only, never wider for a moment.
    """
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in (hostname, "localhost", "127.0.0.1", "::1"):
        general = _general_name(name)
        if general is not None and general not in names:
            names.append(general)
    common_name = hostname if 0 < len(hostname) <= 64 else "tcpchat"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # a client clock slightly behind
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, key_pem)
        # The certificate last: its presence says the pair is complete.
        write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode())
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError):  # a file where tcpchat's folder should be
            why = f"{exc.filename or folder} is a file, not a folder"
        raise TlsError(f"cannot save a TLS certificate in {folder}: {why}.") from None
    return cert_path, key_path


def _general_name(name: str) -> x509.GeneralName | None:
    """A subjectAltName entry for a host name or address; None for a name DNS cannot hold."""
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if len(ascii_name) > 253 or not _DNS_NAME.fullmatch(ascii_name):
        return None  # a server --name such as "lobby room" is no host name
    return x509.DNSName(ascii_name)


def _write_private(path: Path, data: bytes) -> None:
    """Write a file created with mode 0600 (a sibling renamed over `path`, so a reader never
    sees half a key and an old file's wider mode is not inherited)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def certificate_fingerprint(cert_file: str | os.PathLike[str]) -> str:
    """The fingerprint of the first certificate in a PEM file (the server's own, in a chain),
    which clients show and pin: for the welcome banner."""
    path = Path(cert_file)
    text = read_tls_file(path, "certificate").decode("ascii", errors="replace")
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.DOTALL)
    if match is None:
        raise TlsError(f"{path} holds no certificate in PEM form (-----BEGIN CERTIFICATE-----).")
    try:
        der = ssl.PEM_cert_to_DER_cert(match.group(0))
    except (ValueError, binascii.Error):
        raise TlsError(f"the certificate in {path} is damaged.") from None
    return fingerprint(der)
