"""TLS at the server's door: every handshake is answered, on both event loops, and sockets that
never start one cannot keep real clients out.

Real TLS clients (Python's ssl) on 127.0.0.x: Linux routes the whole 127/8 to loopback, so each
test client can come from an address of its own, as on the internet.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import TIMEOUT
from support.running import RunningServer, both_event_loops

from tcpchat import tls
from tcpchat.server.guard import HandshakeSlots, OncePerAddress

StartServer = Callable[..., RunningServer]
many_loopback_addresses = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="only Linux routes all of 127/8 to loopback"
)


@pytest.fixture(params=["asyncio", "uvloop"])
def server_loop(request: pytest.FixtureRequest) -> str:
    return both_event_loops(request)


@pytest.fixture
def tls_chat(start_server: StartServer, tmp_path: Path) -> RunningServer:
    cert, key = tls.self_signed_certificate(tmp_path, "testhost")
    return start_server(tls=tls.server_context(cert, key), max_per_address=32, connect_rate=60)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect_from(source: str, port: int, opened: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), TIMEOUT, source_address=(source, 0))
    opened.append(sock)
    return sock


def banner_over_tls(source: str, port: int, opened: list[socket.socket]) -> str:
    """Connect from `source`, send the TLS hello at once, and read the banner line."""
    raw = connect_from(source, port, opened)
    sock = client_context().wrap_socket(raw)  # the ClientHello goes out with the connect
    opened.append(sock)
    received = b""
    while b"\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.decode()


def test_every_client_that_says_hello_at_once_gets_the_banner(
    tls_chat: RunningServer, sockets: list[socket.socket]
) -> None:
    """The client's hello arrives with the connection; uvloop reads it at once, and TLS must
    still see it (it used to land in the plain stream's buffer, and the handshake hung)."""
    for _ in range(20):
        assert banner_over_tls("127.0.0.1", tls_chat.port, sockets).startswith("Welcome")


def test_a_member_that_leaves_over_tls_is_closed_without_an_error(
    tls_chat: RunningServer, sockets: list[socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    """A member says goodbye over TLS: the server closes the connection through its own stream
    protocol (uvloop hands back its TLS protocol, which cannot wait for the close)."""
    server = tls_chat.server
    assert server is not None
    sock = client_context().wrap_socket(connect_from("127.0.0.1", tls_chat.port, sockets))
    sockets.append(sock)
    lines = sock.makefile("rb")
    assert lines.readline().startswith(b"Welcome")
    sock.sendall(b'{"type":"hello","name":"tls-alice","version":1}\n')
    assert b'"welcome"' in lines.readline()
    sock.sendall(b'{"type":"bye"}\n')
    assert lines.read() == b""  # the server closed its side after its last words
    lines.close()
    sock.close()  # as a client does once the server has closed
    deadline = time.monotonic() + TIMEOUT
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.connections
    gc.collect()  # a task that failed says so when it is collected
    errors = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("tcpchat", "asyncio")) and record.levelno >= logging.ERROR
    ]
    assert not errors, errors


@many_loopback_addresses
def test_idle_sockets_from_many_addresses_cannot_keep_real_clients_out(
    tls_chat: RunningServer, sockets: list[socket.socket]
) -> None:
    """20 addresses, each within its limits, open 14 idle sockets: more than all the handshake
    slots.  Every real client from another address still gets its handshake and the banner."""
    for address in range(20):
        for _ in range(14):
            connect_from(f"127.0.1.{address + 1}", tls_chat.port, sockets)
    for address in range(21):
        banner = banner_over_tls(f"127.0.2.{address + 1}", tls_chat.port, sockets)
        assert banner.startswith("Welcome"), f"client {address} got {banner!r}"


@pytest.mark.slow
def test_a_refused_address_gets_one_handshake_a_minute_to_be_told_why(
    start_server: StartServer, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    """Past its connect rate an address is refused; saying why costs a TLS handshake, which it
    gets once a minute, however fast it comes back (it used to get one every time)."""
    cert, key = tls.self_signed_certificate(tmp_path, "testhost")
    server = start_server(tls=tls.server_context(cert, key), connect_rate=5)

    async def handshakes() -> int:
        """Connections that got through a TLS handshake (asyncio's client, which closes a
        socket whose handshake failed; ssl.wrap_socket may leave one open)."""
        done = 0
        for _ in range(30):
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", server.port, ssl=client_context()),
                    TIMEOUT,
                )
            except (OSError, asyncio.TimeoutError):
                continue  # cut before any handshake
            done += 1
            writer.transport.abort()
        return done

    assert asyncio.run(handshakes()) == 5 + 1  # the five admitted, and one told why


def test_once_per_address_lets_one_through_a_period() -> None:
    clock = [100.0]
    once = OncePerAddress(60, lambda: clock[0])
    assert once.allow("192.0.2.1") is True
    assert once.allow("192.0.2.1") is False
    assert once.allow("192.0.2.2") is True
    clock[0] += 60
    assert once.allow("192.0.2.1") is True


def test_a_socket_that_never_starts_tls_is_cut_after_the_handshake_deadline(
    start_server: StartServer, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    cert, key = tls.self_signed_certificate(tmp_path, "testhost")
    server = start_server(tls=tls.server_context(cert, key), handshake_timeout=0.2)
    idle = connect_from("127.0.0.1", server.port, sockets)
    idle.settimeout(TIMEOUT)
    try:
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass  # cut with a reset: just as good
    assert server.call(lambda: len(server.server.door._handshakes)) == 0  # type: ignore[union-attr]


# --- the slots themselves -------------------------------------------------------------------


def test_handshake_slots_give_a_newcomer_the_oldest_slot_of_the_greediest_address() -> None:
    slots: HandshakeSlots[str] = HandshakeSlots(capacity=4, per_address=3)
    assert slots.enter("10.0.0.1", "a1") is None
    assert slots.enter("10.0.0.1", "a2") is None
    assert slots.enter("10.0.0.1", "a3") is None
    assert slots.enter("10.0.0.2", "b1") is None
    assert slots.enter("10.0.0.3", "c1") == "a1"  # full: the greediest address gives way
    assert slots.enter("10.0.0.4", "d1") == "a2"
    assert slots.enter("10.0.0.2", "b2") == "a3"  # now every address holds at most one
    assert slots.enter("10.0.0.5", "e1") == "b1"  # a tie: the first such address's oldest
    assert sorted(slots.holders()) == ["b2", "c1", "d1", "e1"]


def test_handshake_slots_hold_at_most_so_many_per_address() -> None:
    slots: HandshakeSlots[int] = HandshakeSlots(capacity=100, per_address=2)
    assert slots.enter("10.0.0.1", 1) is None
    assert slots.enter("10.0.0.1", 2) is None
    assert slots.enter("10.0.0.1", 3) == 1
    assert slots.enter("2001:db8::1", 4) is None
    assert slots.enter("2001:db8::2", 5) is None  # the same /64: one address
    assert slots.enter("2001:db8::3", 6) == 4
    slots.leave(2)
    slots.leave(2)  # leaving twice (done, then displaced) is harmless
    assert sorted(slots.holders()) == [3, 5, 6]
    assert len(slots) == 3
