"""Talking to a server over blocking line clients: JSON events, joins, and checks that nothing is pending."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from support import TIMEOUT
from support.running import RunningServer
from support.wire import LineClient

Event = dict[str, Any]


def hello(name: str, **fields: Any) -> Event:
    return {"type": "hello", "name": name, "version": 1, **fields}


def say(text: str, request_id: str | None = None) -> Event:
    event: Event = {"type": "say", "text": text}
    if request_id is not None:
        event["id"] = request_id
    return event


def json_line(event: Event) -> bytes:
    return json.dumps(event).encode() + b"\n"


def join(server: RunningServer, name: str, host: str = "127.0.0.1") -> tuple[LineClient, Event]:
    """A JSON member that has read its banner; returns it with its `welcome`."""
    client = server.connect(host)
    assert not client.read_line().startswith("{")
    client.send_json(hello(name))
    return client, client.expect("welcome")


def sync(client: LineClient, tag: str = "sync") -> None:
    """A ping round trip whose pong must be the next line: nothing else was pending."""
    client.send_json({"type": "ping", "id": tag})
    assert client.read_json() == {"type": "pong", "id": tag}


def next_of(client: LineClient, kind: str, timeout: float | None = None) -> Event:
    """The next event of type `kind`, skipping any others."""
    lines = client.read_until(lambda line: json.loads(line)["type"] == kind, timeout)
    return json.loads(lines[-1])


def collect(
    client: LineClient, kind: str, count: int, timeout: float | None = None
) -> tuple[list[Event], list[Event]]:
    """Read until `count` events of `kind` came; return them and every other event in between."""
    deadline = time.monotonic() + (timeout or TIMEOUT)
    wanted: list[Event] = []
    others: list[Event] = []
    while len(wanted) < count:
        event = client.read_json(max(0.01, deadline - time.monotonic()))
        (wanted if event["type"] == kind else others).append(event)
    return wanted, others


def expect_error(client: LineClient, code: str, request_id: str | None = None) -> Event:
    error = client.expect("error")
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error.get("id") == request_id, error
    return error


def expect_closed(client: LineClient) -> list[str]:
    """The lines the server sent before closing the connection (AssertionError if it stays open)."""
    return client.read_eof().decode(errors="replace").splitlines()


def plain_until(client: LineClient, pattern: str, timeout: float | None = None) -> list[str]:
    """Plain-mode lines up to and including the first that matches the regex `pattern`."""
    regex = re.compile(pattern)
    return client.read_until(lambda line: regex.search(line) is not None, timeout)


def plain_sync(client: LineClient, members: int) -> None:
    """`/who` whose answer must be the next line: nothing else was pending for this plain member."""
    client.send_line("/who")
    assert re.match(rf"^\* {members} members? online: ", client.read_line())


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class SmallBufferClient(LineClient):
    """A line client whose receive buffer is set before connecting (create_connection can't)."""

    def __init__(self, port: int, timeout: float, receive_buffer: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        self.timeout = timeout
        self.sock = sock
        self._buffer = b""
        self.closed = False
