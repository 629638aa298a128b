"""The web port (`serve --web`): browser members over WebSocket in the same room as TCP and plain
members, under the same rules; the page's files; the origin check; what a browser that
misbehaves gets.  The browser side is a real WebSocket client (websockets' own framing)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import TIMEOUT
from support.running import RunningServer
from support.websocket import HandshakeRefused, WebClient

HIGH_RATE = {"rate": 1e6, "burst": 10**6, "byte_rate": 0}


@pytest.fixture
def web(start_server: Callable[..., RunningServer]) -> Callable[..., RunningServer]:
    """Start a server with its web port on a free port."""

    def start(**overrides: Any) -> RunningServer:
        return start_server(web_port=0, **overrides)

    return start


@pytest.fixture
def browsers() -> Iterator[Callable[..., WebClient]]:
    """Open WebSocket clients to a server's web port; all closed at the end."""
    opened: list[WebClient] = []

    def open_client(server: RunningServer, **options: Any) -> WebClient:
        client = WebClient(web_port(server), TIMEOUT, **options)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def web_port(server: RunningServer) -> int:
    assert server.server is not None
    return server.server.web_ports[0]


def http_get(port: int, path: str, headers: str = "") -> tuple[str, dict[str, str], bytes]:
    """One GET on a new connection: the status line, the headers (lower-case names), the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode())
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection ended before the response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    fields = {name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    while len(body) < int(fields.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "the connection ended inside the body"
        body += chunk
    return status, fields, body


def test_a_browser_and_a_tcp_member_share_the_room(web, browsers) -> None:
    server = web()
    tcp = server.join("alice")
    browser = browsers(server)
    welcome = browser.join("webby")
    assert welcome["names"] == ["alice", "webby"] and welcome["members"] == 2
    assert tcp.expect("joined")["name"] == "webby"

    browser.send_json({"type": "say", "text": "hello from the page", "id": "w1"})
    ack = browser.expect("ack")
    assert (ack["id"], ack["delivered"]) == ("w1", 1)
    message = tcp.expect("message")
    assert (message["from"], message["text"], message["seq"]) == (
        "webby",
        "hello from the page",
        ack["seq"],
    )
    tcp.send_json({"type": "say", "text": "hello, browser"})
    assert browser.expect("message")["text"] == "hello, browser"


def test_a_plain_member_reads_a_browser_member_and_back(web, browsers) -> None:
    server = web()
    plain = server.join_plain("nc-user")
    browser = browsers(server)
    browser.join("webby")
    plain.read_until(lambda line: "webby joined" in line)
    browser.send_json({"type": "say", "text": "<b>not bold</b>"})
    plain.read_until(lambda line: "webby: <b>not bold</b>" in line)
    plain.send_line("hi there")
    assert browser.expect("message")["text"] == "hi there"


def test_a_browser_sends_no_banner_and_its_first_frame_is_hello(web, browsers) -> None:
    server = web()
    browser = browsers(server)
    browser.send_json({"type": "say", "text": "too early"})
    assert browser.read_json()["code"] == "not_joined"


def test_only_the_own_page_or_an_allowed_origin_may_open_the_websocket(web, browsers) -> None:
    server = web(web_origins=("https://chat.example.org",))
    port = web_port(server)
    with pytest.raises(HandshakeRefused) as refused:
        browsers(server, origin="http://evil.example")
    assert refused.value.status == 403
    assert b"own page" in refused.value.body
    for origin in (f"http://127.0.0.1:{port}", "https://chat.example.org", None):
        browsers(server, origin=origin).join(f"ok{len(str(origin))}")


def test_bad_frames_are_answered_like_bad_lines_and_the_member_goes_on(web, browsers) -> None:
    server = web()
    browser = browsers(server)
    browser.join("webby")
    browser.send_text("not json")
    assert browser.read_json()["code"] == "bad_json"
    browser.send_text("[1, 2]")
    assert browser.read_json()["code"] == "bad_message"
    browser.send_binary(b'{"type": "say", "text": "binary"}')
    assert browser.read_json()["code"] == "bad_message"
    browser.send_text(json.dumps({"type": "say", "text": "x" * 20_000}))
    assert browser.read_json()["code"] == "line_too_long"
    browser.send_json({"type": "say", "text": "still here", "id": "after"})
    assert browser.expect("ack")["id"] == "after"


def test_a_browser_that_stops_reading_is_dropped_slow(web, browsers) -> None:
    server = web(outgoing_limit=64 * 1024, **HIGH_RATE)
    sleeper = browsers(server, receive_buffer=4096)
    sleeper.join("sleeper")
    talker = server.join("talker")
    big = "z" * 1000
    for _ in range(500):  # at most 10,000 messages of 1,000 characters; the drop comes first
        talker.send_raw(
            b"".join(json.dumps({"type": "say", "text": big}).encode() + b"\n" for _ in range(20))
        )
        events = [talker.read_json() for _ in range(20)]
        left = [e for e in events if e["type"] == "left"]
        if left:
            break
        while True:  # the acks may come after the left
            pending = [e for e in events if e["type"] == "ack"]
            if len(pending) == 20:
                break
            event = talker.read_json()
            events.append(event)
            if event["type"] == "left":
                left = [event]
                break
        if left:
            break
    assert left and (left[0]["name"], left[0]["reason"]) == ("sleeper", "slow")


def test_a_stopping_server_says_goodbye_in_a_frame_then_closes(web) -> None:
    server = web()
    browser = WebClient(web_port(server), TIMEOUT)
    try:
        browser.join("webby")
        server.stop()
        events = browser.read_until_closed()
        assert events[-1]["type"] == "shutdown"
    finally:
        browser.close()


def test_the_web_port_answers_http_with_a_strict_policy_and_keeps_alive(web) -> None:
    server = web()
    port = web_port(server)
    status, fields, _ = http_get(port, "/no-such-file")
    assert status.startswith("HTTP/1.1 404")
    policy = fields["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert fields["x-content-type-options"] == "nosniff"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        for _ in range(3):  # one connection, several requests
            sock.sendall(f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert read_response(sock)[0].startswith("HTTP/1.1 404")


def test_the_page_and_its_files_are_served_with_their_types(web) -> None:
    server = web()
    port = web_port(server)
    assert server.server is not None
    status, fields, body = http_get(port, "/")
    if status.startswith("HTTP/1.1 404"):
        pytest.skip("the page's files are not in this checkout")
    assert status.startswith("HTTP/1.1 200")
    assert fields["content-type"] == "text/html; charset=utf-8"
    assert b"<html" in body.lower()
    status, _, again = http_get(port, "/", f"If-None-Match: {fields['etag']}\r\n")
    assert status.startswith("HTTP/1.1 304") and again == b""
    status, packed_fields, packed = http_get(port, "/", "Accept-Encoding: gzip, br\r\n")
    assert packed_fields["content-encoding"] == "gzip" and gzip.decompress(packed) == body
    status, fields, _ = http_get(port, "/app.js")
    assert status.startswith("HTTP/1.1 200")
    assert fields["content-type"] == "text/javascript; charset=utf-8"


def test_a_refused_address_gets_one_sentence_over_http(web) -> None:
    server = web(max_per_address=1)
    holder = server.join("alice")  # the address's one connection
    status, _, body = http_get(web_port(server), "/")
    assert status.startswith("HTTP/1.1 503")
    assert body.decode().strip().endswith(".")
    holder.close()


def test_a_request_that_is_not_http_is_answered_and_closed(web) -> None:
    server = web()
    with socket.create_connection(("127.0.0.1", web_port(server)), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x16\x03\x01 definitely not http\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status.startswith("HTTP/1.1 400")


# --- the operator's page ------------------------------------------------------------------------


def operator(server: RunningServer, browsers: Callable[..., WebClient], token: str | None = None):
    """An operator's page connection that has shown `token` (the right one by default)."""
    assert server.server is not None and server.server.web is not None
    page = browsers(server, path="/admin/ws")
    page.send_json({"type": "auth", "token": token or server.server.web.operator.token})
    return page


def test_the_operators_page_needs_the_token_and_a_wrong_one_counts_as_a_wrong_password(
    web, browsers
) -> None:
    server = web(auth_failures=2)
    for _ in range(2):
        page = operator(server, browsers, token="guess")
        error = page.read_json()
        assert error["type"] == "error" and "not the operator's" in error["message"]
        with pytest.raises(AssertionError):
            page.read_json()  # closed
    with pytest.raises(HandshakeRefused) as refused:  # locked out now, even with the token
        operator(server, browsers)
    assert refused.value.status == 503 and b"wrong passwords" in refused.value.body


def test_the_operators_page_shows_who_is_here_and_how_they_came(web, browsers) -> None:
    server = web()
    server.join("alice")
    server.join_plain("bob")
    browsers(server).join("carol")
    page = operator(server, browsers)
    state = page.expect("state")
    while state["count"] < 3:
        state = page.expect("state")
    assert [(m["name"], m["via"]) for m in state["members"]] == [
        ("alice", "tcp"),
        ("bob", "plain"),
        ("carol", "web"),
    ]
    assert all(m["address"].startswith("127.0.0.1:") for m in state["members"])
    assert state["connections"] == 3 and state["bans"] == [] and state["refusals"] == []


def test_the_operators_page_previews_then_runs_a_kick_and_a_ban(web, browsers) -> None:
    server = web()
    alice = server.join("alice")
    server.join("bob")
    page = operator(server, browsers)
    page.expect("state")
    page.send_json({"type": "preview", "command": "/ban alice 30", "id": "p1"})
    preview = page.expect("preview")
    assert preview["id"] == "p1"
    # Everyone from that address, named, and the operator's own page is not a chat connection.
    assert (
        preview["text"]
        == "This bans 127.0.0.1 for 30 minutes and removes alice, bob (2 connections)."
    )
    assert server.call(lambda: server.server.lobby.count) == 2  # a preview does nothing
    page.send_json({"type": "preview", "command": "/kick alice spam", "id": "p2"})
    assert "removes alice" in page.expect("preview")["text"]
    page.send_json({"type": "run", "command": "/kick alice spam", "id": "r1"})
    result = page.expect("result")
    assert (result["id"], result["text"]) == ("r1", "Removed alice.")
    shutdown = alice.read_json()
    while shutdown["type"] != "shutdown":  # bob's join came first
        shutdown = alice.read_json()
    assert "spam" in shutdown["message"] and shutdown["reason"] == "kicked"
    state = page.expect("state")
    while state["count"] != 1:
        state = page.expect("state")
    assert [m["name"] for m in state["members"]] == ["bob"]


def test_with_tls_the_page_is_https_and_the_websocket_wss(start_server, tmp_path) -> None:
    from tcpchat import tls

    cert, key = tls.self_signed_certificate(tmp_path, "localhost")
    server = start_server(tls=tls.server_context(cert, key), web_port=0)
    port = web_port(server)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with context.wrap_socket(raw) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        status, _, body = read_response(sock)
    assert status.startswith("HTTP/1.1 200") and b"<html" in body.lower()

    async def over_wss() -> dict[str, Any]:
        from websockets.asyncio.client import connect

        async with connect(f"wss://127.0.0.1:{port}/ws", ssl=context) as ws:
            await ws.send(json.dumps({"type": "hello", "name": "secure", "version": 1}))
            welcome: dict[str, Any] = json.loads(await ws.recv())
            return welcome

    assert asyncio.run(asyncio.wait_for(over_wss(), TIMEOUT))["name"] == "secure"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as plain:
        plain.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert plain.recv(100)[:1] != b"H"  # no plain HTTP on a TLS web port


def test_a_browser_needs_the_password_as_everyone_does(web, browsers) -> None:
    server = web(password="sesame")
    browser = browsers(server)
    browser.send_json({"type": "hello", "name": "webby", "version": 1})
    assert browser.read_json()["code"] == "auth_failed"  # fatal: the page asks, then comes again
    again = browsers(server)
    again.send_json({"type": "hello", "name": "webby", "version": 1, "password": "sesame"})
    assert again.expect("welcome")["name"] == "webby"
