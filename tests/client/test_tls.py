"""TLS (tcpchat.tls, tcpchat.client.trust and `join --tls`): real handshakes with the in-process server on 127.0.0.1.

Certificates are made for each test (self-signed by tcpchat.tls, or a small CA made here with
`cryptography`); the known-hosts file lives in the test's own config folder.  Outside clients
are `python -m tcpchat join` as a subprocess and, where it is installed, `openssl s_client`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import TIMEOUT
from support.running import RunningServer, both_event_loops
from support.wire import LineClient

from tcpchat import tls
from tcpchat.client import trust
from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    JoinRefused,
    TlsRefused,
    TlsSettings,
)
from tcpchat.protocol import ErrorCode, Message, Say

HOST = "127.0.0.1"
StartServer = Callable[..., RunningServer]


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def server_loop(request: pytest.FixtureRequest) -> str:
    """Every TLS test runs against a server on asyncio's event loop and on uvloop."""
    return both_event_loops(request)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tcpchat's config folder for this test only: known_hosts and certificates land here."""
    folder = tmp_path / "config"
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(folder))
    return folder


def self_signed(folder: Path) -> tuple[Path, Path]:
    return tls.self_signed_certificate(folder, "testhost")


def tls_server(start_server: StartServer, cert: Path, key: Path, **settings: Any) -> RunningServer:
    return start_server(tls=tls.server_context(cert, key), **settings)


def restart(
    server: RunningServer, start_server: StartServer, cert: Path, key: Path
) -> RunningServer:
    """Stop `server` and start another with this certificate on the same port."""
    port = server.port
    server.stop()
    return tls_server(start_server, cert, key, port=port)


def known_hosts_text(config: Path) -> str:
    return (config / trust.KNOWN_HOSTS_FILE).read_text(encoding="utf-8")


async def open_and_join(
    port: int, settings: TlsSettings | None = None, name: str = "alice", host: str = HOST
) -> tuple[ChatConnection, str]:
    """Connect with these settings, join, and return the connection and the server's name."""
    connection = await ChatConnection.open(host, port, tls=settings, timeout=TIMEOUT)
    try:
        welcome = await connection.join(name)
    except BaseException:
        await connection.close()
        raise
    return connection, welcome.server


def join_once(port: int, settings: TlsSettings | None = None, host: str = HOST) -> ChatConnection:
    """Join and leave again; the (closed) connection tells how it was trusted."""

    async def scenario() -> ChatConnection:
        connection, _ = await open_and_join(port, settings, host=host)
        await connection.close()
        return connection

    return asyncio.run(scenario())


def refusal(port: int, settings: TlsSettings | None, host: str = HOST) -> ChatError:
    """The ChatError that joining raises; fails if joining works."""

    async def scenario() -> ChatError:
        try:
            connection, _ = await open_and_join(port, settings, host=host)
        except ChatError as error:
            return error
        await connection.close()
        raise AssertionError("the join was not refused")

    return asyncio.run(scenario())


def one_sentence(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and text.endswith("."), text
    assert "Traceback" not in text and "_ssl.c" not in text, text
    return text


def tls_member(
    server: RunningServer, name: str, context: ssl.SSLContext | None = None
) -> LineClient:
    """A raw JSON member over TLS (not tcpchat's client), joined; closed when the test ends."""
    client = LineClient(HOST, server.port, TIMEOUT)
    server.clients.append(client)
    client.sock = (context or trust.pinning_context()).wrap_socket(
        client.sock, server_hostname=HOST
    )
    client.read_line()  # the banner
    client.send_json({"type": "hello", "name": name, "version": 1})
    assert client.expect("welcome")["name"] == name
    return client


class RecordingListener:
    """A stand-in server on 127.0.0.1 that records what each client sent it (decrypted, over
    TLS when given a context): to prove a client sent nothing.  It greets each connection
    with a banner line, as tcpchat does, then reads until the client closes."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.received: list[bytes] = []  # one entry per connection, once it has ended
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recording-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            data = self._record(sock)
            with self._changed:
                self.received.append(data)
                self._changed.notify_all()

    def _record(self, sock: socket.socket) -> bytes:
        data = b""
        sock.settimeout(TIMEOUT)
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True)
            sock.sendall(b"Welcome to a stand-in! Enter your name:\n")
            while chunk := sock.recv(65536):
                data += chunk
        except (OSError, ssl.SSLError):
            pass  # the client hung up, in whichever way: what it sent so far is the record
        finally:
            sock.close()
        return data

    def wait_for_connections(self, count: int) -> list[bytes]:
        """What the first `count` connections sent, once each has ended; fails after TIMEOUT."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= count, TIMEOUT), (
                f"{len(self.received)} of {count} connections ended"
            )
            return list(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self.listener.close()


@pytest.fixture
def recording() -> Iterator[Callable[[ssl.SSLContext | None], RecordingListener]]:
    """Start RecordingListeners; each is closed when the test ends."""
    started: list[RecordingListener] = []

    def start(context: ssl.SSLContext | None = None) -> RecordingListener:
        started.append(RecordingListener(context))
        return started[-1]

    yield start
    for listener in started:
        listener.close()


def make_ca(
    folder: Path, name: str = "tcpchat test CA"
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A small certificate authority: its PEM file, key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path, key, certificate


def make_leaf(
    folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost signed by the CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / "leaf-cert.pem", folder / "leaf-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment for a `tcpchat join` subprocess: none of the tester's settings."""
    clean = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("TCPCHAT_", "_TCPCHAT"))
    }
    clean["TCPCHAT_CONFIG_DIR"] = str(tmp_path / "config")
    return clean


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Subprocesses a test starts: killed and reaped when it ends, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


# --- certificates and fingerprints --------------------------------------------------------------


def test_self_signed_certificate_is_made_once_with_a_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "app"
    old_umask = os.umask(
        0
    )  # a key file made with the default mode and chmod'ed later would be 0666
    try:
        cert, key = tls.self_signed_certificate(folder, "chat.example.org")
    finally:
        os.umask(old_umask)
    assert (cert.name, key.name) == ("tls-cert.pem", "tls-key.pem")
    if os.name == "posix":
        assert key.stat().st_mode & 0o777 == 0o600
    first = tls.certificate_fingerprint(cert)
    pem = cert.read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"chat.example.org", "localhost"}
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime > datetime.timedelta(days=9 * 365)
    assert first == tls.fingerprint(ssl.PEM_cert_to_DER_cert(pem.decode()))
    # Used again, not remade: the fingerprint members pinned stays true.
    again = tls.self_signed_certificate(folder, "another-name")
    assert again == (cert, key)
    assert tls.certificate_fingerprint(cert) == first and cert.read_bytes() == pem
    # A different folder is a different certificate.
    other, _ = tls.self_signed_certificate(tmp_path / "other", "chat.example.org")
    assert tls.certificate_fingerprint(other) != first


def test_self_signed_certificate_names_only_real_host_names(tmp_path: Path) -> None:
    """`serve --name "lobby room"` names the certificate too: no host name is made of it."""
    cert, _ = tls.self_signed_certificate(tmp_path, "lobby room")
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert certificate.subject.rfc4514_string() == "CN=lobby room"


def test_fingerprint_is_ssh_style() -> None:
    digest = hashlib.sha256(b"certificate").digest()
    expected = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    assert tls.fingerprint(b"certificate") == expected
    assert len(expected) == len("SHA256:") + 43


def test_fingerprint_parses_every_form_people_paste() -> None:
    digest = hashlib.sha256(b"certificate").digest()
    canonical = tls.fingerprint(b"certificate")
    colons = ":".join(f"{byte:02X}" for byte in digest)
    for text in (
        canonical,
        "sha256:" + canonical[len("SHA256:") :],
        "  " + canonical + "  \n",
        canonical[len("SHA256:") :],
        canonical + "=",
        f"sha256 Fingerprint={colons}",  # OpenSSL 3
        f"SHA256 Fingerprint={colons}",  # OpenSSL 1.1
        colons,
        colons.lower(),
        digest.hex(),
        digest.hex().upper(),
        f"SHA256:{digest.hex()}",
    ):
        assert tls.parse_fingerprint(text) == canonical, text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SHA256:",
        "SHA256:abc",
        "MD5:" + "a" * 43,
        hashlib.sha1(b"x").hexdigest(),  # a SHA-1 fingerprint is not one of ours
        hashlib.sha256(b"x").hexdigest()[:-1],
        "sha1 Fingerprint=" + ":".join(["AB"] * 20),
        "SHA256:" + "!" * 43,
    ],
)
def test_fingerprint_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"fingerprint is SHA256: .*\.$"):
        tls.parse_fingerprint(text)


def test_openssl_prints_the_fingerprint_we_compute(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed, so its fingerprint cannot be compared")
    cert, _ = self_signed(tmp_path)
    printed = subprocess.run(
        [openssl, "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout
    assert tls.parse_fingerprint(printed) == tls.certificate_fingerprint(cert)


def test_server_context_says_what_is_wrong_with_its_files(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "one")
    other_cert, other_key = self_signed(tmp_path / "two")
    encrypted = tmp_path / "encrypted.pem"
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cases = [
        (tmp_path / "missing.pem", key, "certificate file .*missing.pem does not exist"),
        (cert, tmp_path, "key file .* is a folder"),
        (key, key, "holds no certificate"),
        (cert, cert, "holds no private key"),
        (cert, other_key, "does not belong to the certificate"),
        (cert, encrypted, "protected by a passphrase"),
    ]
    for cert_file, key_file, words in cases:
        with pytest.raises(tls.TlsError, match=words) as raised:
            tls.server_context(cert_file, key_file)
        one_sentence(raised.value)
    context = tls.server_context(other_cert, other_key)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_known_hosts_keys_and_file(tmp_path: Path) -> None:
    assert trust.host_key("::1", 1024) == "[::1]:1024"
    assert trust.host_key("Chat.Example.ORG.", 4000) == "chat.example.org:4000"
    assert trust.host_key("127.0.0.1", 1) == "127.0.0.1:1"
    known = trust.KnownHosts(tmp_path / "known_hosts")
    assert known.get("::1", 1024) is None
    known.pin("::1", 1024, "SHA256:one")
    known.mark_verified("chat.example.org", 4000)
    known.pin("::1", 1025, "SHA256:two")
    assert known.get("::1", 1024) == "SHA256:one"
    assert known.get("CHAT.example.org", 4000) == trust.CA_VERIFIED
    lines = [line for line in known.path.read_text().splitlines() if not line.startswith("#")]
    assert lines == [
        "[::1]:1024 SHA256:one",
        "chat.example.org:4000 ca",
        "[::1]:1025 SHA256:two",
    ]


# --- joining over TLS ---------------------------------------------------------------------------


def test_json_clients_chat_over_tls(start_server: StartServer, config: Path) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)
    bob = tls_member(server, "bob")

    async def scenario() -> None:
        connection, server_name = await open_and_join(server.port, TlsSettings(trust_new=True))
        try:
            assert server_name == "testserver" and connection.is_tls
            await connection.send(Say(text="hello over TLS", id="1"))
        finally:
            await connection.close()
        assert connection.is_closed

    asyncio.run(scenario())
    assert bob.expect("joined")["name"] == "alice"
    message = bob.expect("message")
    assert (message["from"], message["text"]) == ("alice", "hello over TLS")
    assert bob.expect("left")["reason"] == "disconnected"


def test_self_signed_server_is_pinned_on_first_use_then_accepted(
    start_server: StartServer, config: Path
) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)
    expected = tls.certificate_fingerprint(cert)

    first = join_once(server.port, TlsSettings(trust_new=True))
    assert first.new_pin is not None
    assert first.new_pin.fingerprint == expected
    assert first.new_pin.address == f"{HOST}:{server.port}"
    notice = first.new_pin.notice()
    assert expected in notice and "compare it with the one the server printed" in notice
    assert str(config / "known_hosts") in notice
    assert f"{HOST}:{server.port} {expected}" in known_hosts_text(config)

    second = join_once(server.port, TlsSettings())
    assert second.new_pin is None  # known now: nothing to tell


def test_a_new_certificate_with_nobody_to_ask_is_refused_before_a_byte_is_sent(
    recording: Callable[[ssl.SSLContext | None], RecordingListener], config: Path
) -> None:
    cert, key = self_signed(config)
    listener = recording(tls.server_context(cert, key))
    expected = tls.certificate_fingerprint(cert)

    async def scenario() -> ChatError:
        connection = await ChatConnection.open(HOST, listener.port, tls=TlsSettings())
        await connection.join("alice", "s3cret")  # what a script would do next
        raise AssertionError("the new certificate was trusted without a question")

    with pytest.raises(TlsRefused) as refused:
        asyncio.run(scenario())
    text = one_sentence(refused.value)
    assert expected in text and "nothing was sent" in text
    assert f"--fingerprint {expected}" in text and "--trust-new" in text
    assert listener.wait_for_connections(1) == [b""] * len(listener.received)
    assert not (config / "known_hosts").exists()


def test_a_new_certificate_is_pinned_only_when_the_person_says_yes(
    start_server: StartServer,
    recording: Callable[[ssl.SSLContext | None], RecordingListener],
    config: Path,
) -> None:
    cert, key = self_signed(config)
    expected = tls.certificate_fingerprint(cert)
    asked: list[trust.NewCertificate] = []

    def answering(answer: bool) -> TlsSettings:
        async def ask(certificate: trust.NewCertificate) -> bool:
            asked.append(certificate)
            return answer

        return TlsSettings(ask=ask)

    # No: refused, and the stand-in server got nothing but the handshake.
    listener = recording(tls.server_context(cert, key))
    error = refusal(listener.port, answering(False))
    assert isinstance(error, TlsRefused) and "you did not trust" in one_sentence(error)
    assert [c.fingerprint for c in asked] == [expected]
    assert expected in asked[0].question() and f"{HOST}:{listener.port}" in asked[0].question()
    assert listener.wait_for_connections(1) == [b""] * len(listener.received)
    assert not (config / "known_hosts").exists()

    # Yes: joined, and pinned, so the next join asks nothing.
    server = tls_server(start_server, cert, key)
    joined = join_once(server.port, answering(True))
    assert joined.new_pin is not None and joined.new_pin.fingerprint == expected
    assert expected not in joined.new_pin.notice()  # the person has just compared it
    assert f"{HOST}:{server.port} {expected}" in known_hosts_text(config)
    assert join_once(server.port, answering(False)).new_pin is None
    assert len(asked) == 2


def test_a_pinned_server_is_joined_with_tls_even_without_asking_for_it(
    start_server: StartServer, config: Path
) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key, password="s3cret")

    async def scenario(settings: TlsSettings | None) -> ChatConnection:
        connection = await ChatConnection.open(HOST, server.port, tls=settings, timeout=TIMEOUT)
        try:
            await connection.join("alice", "s3cret")
        finally:
            await connection.close()
        return connection

    asyncio.run(scenario(TlsSettings(trust_new=True)))  # pinned now
    plain = asyncio.run(scenario(None))
    assert plain.is_tls and plain.new_pin is None


def test_a_pinned_address_is_never_sent_a_byte_in_clear(
    recording: Callable[[ssl.SSLContext | None], RecordingListener], config: Path
) -> None:
    """A server pinned over TLS that now answers in clear (someone in the way, or TLS turned
    off): refused, and what it received is a TLS handshake, never `hello` or the password."""
    listener = recording(None)
    trust.KnownHosts().pin(HOST, listener.port, tls.fingerprint(b"the certificate met before"))

    async def scenario() -> None:
        connection = await ChatConnection.open(HOST, listener.port, timeout=TIMEOUT)
        await connection.join("alice", "s3cret")

    with pytest.raises(TlsRefused) as refused:
        asyncio.run(scenario())
    text = one_sentence(refused.value)
    address = f"{HOST}:{listener.port}"
    assert "does not answer in TLS" in text and "join without --tls" not in text
    assert f"delete the line for {address} from {config / 'known_hosts'}" in text
    received = listener.wait_for_connections(1)
    assert all(data[:1] in (b"", b"\x16") for data in received), received  # a TLS ClientHello
    assert not any(b"s3cret" in data or b"hello" in data for data in received), received


def test_changed_certificate_is_refused_loudly(start_server: StartServer, config: Path) -> None:
    cert, key = self_signed(config / "first")
    server = tls_server(start_server, cert, key)
    join_once(server.port, TlsSettings(trust_new=True))
    pinned = tls.certificate_fingerprint(cert)

    new_cert, new_key = self_signed(config / "second")
    server = restart(server, start_server, new_cert, new_key)
    error = refusal(server.port, TlsSettings(trust_new=True))
    assert isinstance(error, TlsRefused)
    text = str(error)
    offered = tls.certificate_fingerprint(new_cert)
    address = f"{HOST}:{server.port}"
    assert f"the certificate of {address} has changed!" in text
    assert pinned in text and offered in text
    assert f"delete the line for {address} from {config / 'known_hosts'}" in text
    assert "\n" not in text and "Traceback" not in text
    # Refused before joining: the server never had a member, the old pin stays.
    assert server.call(lambda: server.server.lobby.count if server.server else -1) == 0
    assert f"{address} {pinned}" in known_hosts_text(config)
    # Once the person deletes the line, the new certificate is pinned on first use.
    (config / "known_hosts").write_text("", encoding="utf-8")
    assert join_once(server.port, TlsSettings(trust_new=True)).new_pin is not None


def test_explicit_fingerprint_is_accepted_or_refused(
    start_server: StartServer, config: Path
) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)
    right = tls.certificate_fingerprint(cert)
    accepted = join_once(server.port, TlsSettings(fingerprint=right))
    assert accepted.new_pin is None
    assert not (config / "known_hosts").exists()  # explicit: nothing to remember

    wrong = tls.fingerprint(b"some other certificate")
    error = refusal(server.port, TlsSettings(fingerprint=wrong))
    assert isinstance(error, TlsRefused)
    assert right in str(error) and wrong in str(error) and "--fingerprint" in str(error)
    one_sentence(error)


def test_certificate_authority_verifies_and_refuses_a_downgrade(
    start_server: StartServer, config: Path, tmp_path: Path
) -> None:
    ca_file, ca_key, ca = make_ca(tmp_path / "ca")
    cert, key = make_leaf(tmp_path / "ca", ca_key, ca)
    server = tls_server(start_server, cert, key)
    address = f"{HOST}:{server.port}"

    verified = join_once(server.port, TlsSettings(ca_file=ca_file))
    assert verified.new_pin is None
    assert f"{address} ca" in known_hosts_text(config)
    # The host name is checked too: `localhost` is in the certificate.
    join_once(server.port, TlsSettings(ca_file=ca_file), host="localhost")

    # Another authority does not vouch for it, and that is no reason to pin it instead.
    other_ca, _, _ = make_ca(tmp_path / "other", "another CA")
    error = refusal(server.port, TlsSettings(ca_file=other_ca))
    assert isinstance(error, TlsRefused) and "cannot be verified with" in str(error)

    # The same server now with a self-signed certificate: refused, not pinned.
    self_cert, self_key = self_signed(config)
    server = restart(server, start_server, self_cert, self_key)
    error = refusal(server.port, TlsSettings(trust_new=True))
    assert isinstance(error, TlsRefused)
    assert f"{address} had a certificate verified by a certificate authority before" in str(error)
    assert "self-signed certificate" in str(error)  # what OpenSSL said
    assert f"{address} ca" in known_hosts_text(config)
    error = refusal(server.port, TlsSettings(ca_file=ca_file))
    assert isinstance(error, TlsRefused) and "cannot be verified with" in str(error)


def test_a_known_hosts_that_is_a_folder_is_refused(
    start_server: StartServer, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    server = tls_server(start_server, cert, key)
    blocked = tmp_path / "known_hosts"
    blocked.mkdir()  # a folder where the file should be
    settings = TlsSettings(known_hosts=trust.KnownHosts(blocked))
    # It cannot be read either: refused, rather than trusted as if nothing were pinned.
    error = refusal(server.port, settings)
    assert isinstance(error, TlsRefused)
    assert "cannot read the pinned certificates in" in str(error) and "Is a directory" in str(error)


def test_tls_client_against_a_plain_server_says_so(chat: RunningServer, config: Path) -> None:
    error = refusal(chat.port, TlsSettings())
    assert isinstance(error, TlsRefused)
    assert "does not answer in TLS" in one_sentence(error)
    assert "join without --tls" in str(error)


def test_plain_client_against_a_tls_server_says_so(start_server: StartServer, config: Path) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)
    error = refusal(server.port, None)
    assert "join with --tls" in one_sentence(error)


def test_server_refuses_tls_older_than_1_2(start_server: StartServer, config: Path) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)

    def client(version: ssl.TLSVersion) -> ssl.SSLContext:
        context = trust.pinning_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = version
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL offer TLS 1.1 at all
        return context

    def handshake(port: int, context: ssl.SSLContext) -> str | None:
        raw = LineClient(HOST, port, TIMEOUT).sock
        with raw, context.wrap_socket(raw, server_hostname=HOST) as wrapped:
            return wrapped.version()

    # A server that allows TLS 1.1 shows that this client really offers it...
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lax.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lax.minimum_version = ssl.TLSVersion.TLSv1_1
        lax.set_ciphers("DEFAULT:@SECLEVEL=0")
    lax_server = start_server(tls=lax)
    try:
        assert handshake(lax_server.port, client(ssl.TLSVersion.TLSv1_1)) == "TLSv1.1"
    except (ssl.SSLError, OSError) as exc:
        pytest.skip(f"this OpenSSL cannot speak TLS 1.1 even when asked ({exc})")
    # ...and ours refuses it, while 1.2 and 1.3 are fine.
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(server.port, client(ssl.TLSVersion.TLSv1_1))
    assert handshake(server.port, client(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert handshake(server.port, client(ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"


def test_wrong_password_over_tls_is_auth_failed(start_server: StartServer, config: Path) -> None:
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key, password="s3cret")

    async def scenario() -> None:
        connection = await ChatConnection.open(HOST, server.port, tls=TlsSettings(trust_new=True))
        try:
            with pytest.raises(JoinRefused) as refused:
                await connection.join("alice", "wrong")
            assert refused.value.error.code is ErrorCode.AUTH_FAILED
        finally:
            await connection.close()
        connection = await ChatConnection.open(HOST, server.port, tls=TlsSettings())
        try:
            assert (await connection.join("alice", "s3cret")).name == "alice"
        finally:
            await connection.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_interactive_client_checks_the_pin_again_when_it_reconnects(
    start_server: StartServer, config: Path
) -> None:
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from tcpchat.client.ui.screen import ChatScreen

    cert, key = self_signed(config / "first")
    server = tls_server(start_server, cert, key)
    new_cert, new_key = self_signed(config / "second")
    settings = TlsSettings(trust_new=True)

    async def scenario() -> list[str]:
        with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
            connection, _ = await open_and_join(server.port, settings)
            welcome = connection.welcome
            assert welcome is not None and connection.new_pin is not None
            screen = ChatScreen(HOST, server.port, None, connection, welcome, settings)
            task = asyncio.ensure_future(screen.run())
            try:
                await asyncio.to_thread(restart, server, start_server, new_cert, new_key)
                deadline = time.monotonic() + 3 * TIMEOUT  # the first retry waits a second
                while not any("has changed!" in line for line in screen.transcript):
                    assert time.monotonic() < deadline, list(screen.transcript)
                    assert not task.done()
                    await asyncio.sleep(0.02)
                return list(screen.transcript)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if screen.connection is not None:
                    await screen.connection.close()

    transcript = asyncio.run(scenario())
    assert any(tls.certificate_fingerprint(new_cert) in line for line in transcript)


# --- outside clients ----------------------------------------------------------------------------


@pytest.mark.slow
def test_join_tls_script_end_to_end(
    start_server: StartServer, tmp_path: Path, env: dict[str, str]
) -> None:
    cert, key = self_signed(tmp_path / "server")
    server = tls_server(start_server, cert, key)
    member = tls_member(server, "alice")
    args = [sys.executable, "-m", "tcpchat", "join", HOST, "--port", str(server.port)]
    # Nobody to ask: a new certificate is refused unless --trust-new (or --fingerprint) says so.
    unasked = subprocess.run(
        [*args, "--name", "bot", "--tls"], input="first line\n", capture_output=True, text=True,
        env=env, timeout=4 * TIMEOUT,
    )  # fmt: skip
    assert unasked.returncode == 1
    lines = unasked.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trust-new" in lines[0] and "--fingerprint" in lines[0], lines
    assert not (tmp_path / "config" / "known_hosts").exists()

    run = subprocess.run(
        [*args, "--name", "bot", "--trust-new"],
        input="first line\nsecond line\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=4 * TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    fingerprint = tls.certificate_fingerprint(cert)
    assert fingerprint in run.stderr and "trusting it on first use" in run.stderr
    assert fingerprint not in run.stdout  # stdout is for the chat
    assert member.expect("joined")["name"] == "bot"
    assert [member.expect("message")["text"] for _ in range(2)] == ["first line", "second line"]
    assert member.expect("left")["reason"] == "quit"

    # Pinned now: a second run says nothing about certificates, and needs no --tls to use TLS.
    again = subprocess.run(
        [*args, "--name", "bot"], input="", capture_output=True, text=True, env=env,
        timeout=4 * TIMEOUT,
    )  # fmt: skip
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert member.expect("joined")["name"] == "bot" and member.expect("left")["reason"] == "quit"

    # A wrong --fingerprint (from the environment) fails with one line, exit 1.
    wrong = {**env, "TCPCHAT_FINGERPRINT": tls.fingerprint(b"not this one")}
    refused = subprocess.run(
        [*args, "--name", "bot"], input="x\n", capture_output=True, text=True, env=wrong,
        timeout=4 * TIMEOUT,
    )  # fmt: skip
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "tcpchat refuses it" in lines[0], refused.stderr


def spawn_in_terminal(port: int, env: dict[str, str], *extra: str) -> Any:
    """`tcpchat join` in a real pty (support/screen.py), so it is interactive and may ask."""
    import pexpect
    from support.screen import COLUMNS, ROWS, Terminal

    environment = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tcpchat", "join", HOST, "--port", str(port), "--name", "alice", *extra],
        env={**environment, "TERM": "xterm-256color"},
        dimensions=(ROWS, COLUMNS),
        timeout=TIMEOUT,
    )
    return Terminal(child)


def screen_text(term: Any) -> str:
    """The screen as one string, rows padded to full width: text wrapped across rows is whole."""
    from support.screen import COLUMNS

    return "".join(line.ljust(COLUMNS) for line in term.lines)


def end_terminal(term: Any) -> None:
    if term.child.isalive():
        term.child.kill(9)
        term.child.wait()
    term.child.close(force=True)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="pexpect needs a POSIX pty")
def test_a_person_is_asked_about_a_new_certificate_and_yes_trusts_it(
    start_server: StartServer, tmp_path: Path, env: dict[str, str]
) -> None:
    cert, key = self_signed(tmp_path / "server")
    server = tls_server(start_server, cert, key)
    expected = tls.certificate_fingerprint(cert)
    term = spawn_in_terminal(server.port, env, "--tls")
    try:
        term.wait_text("Trust it and join (yes/no):")
        assert expected in screen_text(term), term.dump()
        assert "compare it with the one the server printed" in screen_text(term), term.dump()
        # Nothing was sent while the person compares: nobody joined, nothing is pinned.
        assert server.call(lambda: server.server.lobby.count if server.server else -1) == 0
        assert not (tmp_path / "config" / "known_hosts").exists()
        term.type("yes\r")
        term.wait_text("1 member online")
        assert f"{HOST}:{server.port} {expected}" in known_hosts_text(tmp_path / "config")
        term.type("\x04")
        term.wait_for(lambda: term.eof, "the end of the program after Ctrl-D")
        term.child.wait()
        assert term.child.exitstatus == 0, term.dump()
    finally:
        end_terminal(term)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="pexpect needs a POSIX pty")
@pytest.mark.parametrize("answer", ["no", "", "y"])
def test_anything_but_yes_about_a_new_certificate_stops_with_nothing_sent(
    answer: str,
    recording: Callable[[ssl.SSLContext | None], RecordingListener],
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    cert, key = self_signed(tmp_path / "server")
    listener = recording(tls.server_context(cert, key))
    term = spawn_in_terminal(listener.port, env, "--tls", "--password", "s3cret")
    try:
        term.wait_text("Trust it and join (yes/no):")
        term.type(answer + "\r")
        term.wait_for(lambda: term.eof, "the end of the program after the answer")
        term.child.wait()
        assert term.child.exitstatus == 1, term.dump()
        assert "you did not trust the certificate" in screen_text(term), term.dump()
    finally:
        end_terminal(term)
    assert listener.wait_for_connections(1) == [b""] * len(listener.received)
    assert not (tmp_path / "config" / "known_hosts").exists()


@pytest.mark.slow
def test_openssl_s_client_joins_in_plain_mode(
    start_server: StartServer, config: Path, processes: list[subprocess.Popen[str]]
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed, so no outside TLS client can be tried")
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)
    member = tls_member(server, "alice")
    process = subprocess.Popen(
        [openssl, "s_client", "-connect", f"{HOST}:{server.port}", "-quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    # -quiet keeps the connection open at the end of input; /quit makes the server close it.
    out, err = process.communicate("carol\nhello from openssl\n/quit\n", timeout=4 * TIMEOUT)
    assert "Welcome to" in out and "Goodbye" in out, (out, err)
    assert member.expect("joined")["name"] == "carol"
    message = member.expect("message")
    assert (message["from"], message["text"]) == ("carol", "hello from openssl")
    assert member.expect("left")["reason"] == "quit"


def test_message_event_over_tls_is_the_usual_one(start_server: StartServer, config: Path) -> None:
    """Two tcpchat clients over TLS: the events are the same objects as over plain TCP."""
    cert, key = self_signed(config)
    server = tls_server(start_server, cert, key)

    async def scenario() -> Message:
        alice, _ = await open_and_join(server.port, TlsSettings(trust_new=True), "alice")
        bob, _ = await open_and_join(server.port, TlsSettings(), "bob")
        try:
            await alice.send(Say(text="hi bob"))

            async def first_message() -> Message:
                while not isinstance(event := await bob.next_event(), Message):
                    pass
                return event

            return await asyncio.wait_for(first_message(), TIMEOUT)
        finally:
            await alice.close()
            await bob.close()

    message = asyncio.run(scenario())
    assert (message.sender, message.text) == ("alice", "hi bob")


def test_an_unreadable_known_hosts_is_refused_not_overwritten(tmp_path) -> None:
    from tcpchat.client.connection import TlsRefused
    from tcpchat.client.trust import KnownHosts
    from tcpchat.tls import TlsError

    path = tmp_path / "known_hosts"
    path.write_bytes(b"127.0.0.1:1024 SHA256:abc\n\xff broken\n")
    store = KnownHosts(path)
    with pytest.raises(
        TlsError, match=r"cannot read the pinned certificates in .*fix or delete it"
    ):
        store.get("127.0.0.1", 1024)
    assert path.read_bytes().endswith(b"\xff broken\n")  # nothing was rewritten
    assert issubclass(TlsRefused, Exception)


@pytest.mark.parametrize(
    "given",
    [("--ca", "--fingerprint"), ("--ca", "--trust-new"), ("--fingerprint", "--trust-new")],
    ids=" ".join,
)
def test_two_ways_of_trusting_together_are_a_usage_error(
    given: tuple[str, str], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from tcpchat.cli import main

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    values = {"--ca": [str(ca)], "--fingerprint": ["SHA256:" + "A" * 43], "--trust-new": []}
    args = ["join", "127.0.0.1", "--name", "a"]
    for option in given:
        args += [option, *values[option]]
    result = CliRunner().invoke(main, args, prog_name="tcpchat")
    assert result.exit_code == 2
    assert "give one of --ca" in result.stderr
    assert f"not {given[0]} and {given[1]}." in result.stderr


def test_a_damaged_certificate_file_is_one_plain_sentence(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    damaged = tmp_path / "damaged.pem"
    text = cert.read_text()
    damaged.write_text(text[:60] + "!!!!" + text[64:])  # base64 garbled inside the PEM block
    with pytest.raises(tls.TlsError) as raised:
        tls.server_context(damaged, key)
    assert (
        str(raised.value)
        == f"cannot read {damaged} or {key}: a certificate or key in it is damaged."
    )


def test_hex_fingerprints_with_spaces_are_taken() -> None:
    spaced = " ".join(["AB"] * 32)
    assert tls.parse_fingerprint(spaced) == tls.parse_fingerprint(spaced.replace(" ", ":"))


def test_a_file_where_the_certificate_folder_should_be_is_said_plainly(tmp_path: Path) -> None:
    blocker = tmp_path / "tcpchat"
    blocker.write_text("")
    with pytest.raises(tls.TlsError) as raised:
        tls.self_signed_certificate(blocker, "localhost")
    assert str(raised.value) == (
        f"cannot save a TLS certificate in {blocker}: {blocker} is a file, not a folder."
    )
