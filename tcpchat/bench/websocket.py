"""A benchmark member that is a browser: the same member as `BenchClient`, over a WebSocket to
`tcpchat serve --web` (each JSON object one text frame; websockets' sans-I/O framing, so the
load generator's framing is the reference implementation's, masking included)."""

from __future__ import annotations

import asyncio

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tcpchat.bench.clients import BenchClient, Tally
from tcpchat.bench.dialects import Dialect


class WebSocketBenchClient(BenchClient):
    """A `BenchClient` whose lines travel as WebSocket text frames to `uri`."""

    def __init__(self, nick: str, dialect: Dialect, tally: Tally, uri: str) -> None:
        super().__init__(nick, dialect, tally)
        self._ws = ClientProtocol(parse_uri(uri), max_size=None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.dialect.on_line(self, bytes(event.data))
            elif isinstance(event, Response):
                if event.status_code == 101:
                    self.write(self.dialect.hello(self.nick))
                else:
                    self.fail(f"the server refused the WebSocket (HTTP {event.status_code}).")
        self._flush()

    def write(self, data: bytes) -> None:
        """`data` is the dialect's lines: each becomes one text frame."""
        for line in data.split(b"\n"):
            if line:
                self._ws.send_text(line)
        self._flush()

    def close(self, polite: bool = True) -> None:
        self.give_up_joining()
        if self.transport is None or self.transport.is_closing():
            return
        if polite:
            self.write(self.dialect.bye())
            self._ws.send_close()
            self._flush()
        self.transport.close()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pending = self._ws.data_to_send()
        if pending:
            transport.write(b"".join(pending))
