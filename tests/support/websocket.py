"""A blocking WebSocket client for tests, as a browser talks to `tcpchat serve --web`: every read
has a deadline, and it can be made to stop reading (a small receive buffer, no reads) to be
dropped `slow`.  The framing is websockets' own sans-I/O `ClientProtocol`: tests exercise the
server against the reference implementation, not against framing written here.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class HandshakeRefused(AssertionError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body.decode(errors='replace').strip()}")
        self.status = status
        self.body = body


class WebClient:
    """One WebSocket connection to `ws://127.0.0.1:PORT/ws`, frames read as JSON objects."""

    def __init__(
        self,
        port: int,
        timeout: float,
        *,
        origin: str | None = None,
        path: str = "/ws",
        receive_buffer: int | None = None,
    ) -> None:
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        request = self.protocol.connect()
        if origin is not None:
            request.headers["Origin"] = origin
        self.protocol.send_request(request)
        self._flush()
        self._messages: list[bytes] = []
        response = self._until(lambda event: isinstance(event, Response))
        assert isinstance(response, Response)
        if response.status_code != 101:
            self.sock.close()
            raise HandshakeRefused(response.status_code, bytes(response.body))

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _until(self, wanted: Any) -> object:
        """Read until the protocol gives an event that passes `wanted` (text messages are kept
        for `read_json` on the way); AssertionError at the deadline or at the end."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = None
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self._messages.append(bytes(event.data))
                if found is None and wanted(event):
                    found = event
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, "nothing came in time"
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.protocol.receive_eof()
                raise AssertionError("the connection ended")
            self.protocol.receive_data(data)
            self._flush()

    # --- the chat ------------------------------------------------------------------------------

    def send_json(self, obj: dict[str, Any]) -> None:
        self.send_text(json.dumps(obj))

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def send_binary(self, data: bytes) -> None:
        self.protocol.send_binary(data)
        self._flush()

    def read_json(self) -> dict[str, Any]:
        """The next JSON object the server sent."""
        if not self._messages:
            self._until(_a_message)
        value: dict[str, Any] = json.loads(self._messages.pop(0))
        return value

    def expect(self, kind: str) -> dict[str, Any]:
        """The next event of type `kind` (those before it are skipped)."""
        while True:
            event = self.read_json()
            if event["type"] == kind:
                return event

    def join(self, name: str) -> dict[str, Any]:
        self.send_json({"type": "hello", "name": name, "version": 1})
        return self.expect("welcome")

    def read_until_closed(self) -> list[dict[str, Any]]:
        """Everything the server sends until it closes the WebSocket; the close code last."""
        events = []
        while True:
            try:
                events.append(self.read_json())
            except AssertionError:
                break
            if self.protocol.close_rcvd is not None:
                break
        return events

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _a_message(event: object) -> bool:
    return isinstance(event, Frame) and event.opcode is Opcode.TEXT
