"""The web port: each connection the door lets in asks for a file of the page, or becomes a
browser member through the WebSocket at `/ws`.

A connection first sends an HTTP request, read (with `websockets`' sans-I/O parser) within the
handshake deadline.  `GET /ws` with a WebSocket upgrade from this page's own origin (or one the
operator allowed, or none: not a browser) becomes a `Member` whose codec speaks frames, served by
the chat server exactly as a TCP member is: the same room, limits, flood control, idle timeout,
`slow` drop and operator's commands.  Anything else is a file of the page, or 404, and the
connection may carry the browser's next request until it has been idle for `KEEP_ALIVE`.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import TYPE_CHECKING

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from tcpchat import sockets
from tcpchat.defaults import READ_CHUNK, SECONDS
from tcpchat.server.member import peer_host
from tcpchat.server.web.admin import OperatorPage, new_token
from tcpchat.server.web.codec import MAX_MESSAGE, WebSocketCodec
from tcpchat.server.web.pages import load_static, page_response, refused_response, respond

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

KEEP_ALIVE = 5 * SECONDS  # how long an idle connection may wait for the browser's next request
MAX_REQUESTS = 100  # requests on one connection before it is closed (the browser opens another)
WEBSOCKET_PATH = "/ws"
OPERATOR_SOCKET_PATH = "/admin/ws"

log = logging.getLogger("tcpchat.server")


class WebPort:
    """Serves the web port's connections (see the module's note)."""

    def __init__(self, server: ChatServer) -> None:
        self.members = server
        self.config = server.config
        self.files = load_static()
        if "/admin.html" in self.files:
            self.files["/admin"] = self.files["/admin.html"]
        self.operator = OperatorPage(server, new_token())
        self._origins = {origin.lower().rstrip("/") for origin in self.config.web_origins}
        self._scheme = "https" if self.config.tls is not None else "http"

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: str | None
    ) -> None:
        """One connection, until it ends (the door counts it meanwhile)."""
        handed_over = False
        try:
            if refusal is not None:
                peername = writer.get_extra_info("peername")
                peer = sockets.format_address(peername)
                self.members.note_refusal(peer_host(peername), peer, refusal)
                writer.write(refused_response(refusal).serialize())
                return
            timeout = self.config.handshake_timeout
            for _ in range(MAX_REQUESTS):
                protocol = ServerProtocol(max_size=MAX_MESSAGE)  # no compression: see codec
                request = await _read_request(reader, writer, protocol, timeout)
                if request is None:
                    return
                path = request.path.partition("?")[0]
                if path == WEBSOCKET_PATH:
                    handed_over = self._upgrade(request, protocol, writer)
                    if handed_over:
                        codec = WebSocketCodec(protocol, self.config.effective_line_limit)
                        member = self.members.new_member(codec, reader, writer)
                        await self.members.serve_member(member)
                    return
                if path == OPERATOR_SOCKET_PATH:
                    if self._upgrade(request, protocol, writer):
                        host = peer_host(writer.get_extra_info("peername"))
                        await self.operator.serve(protocol, reader, writer, host)
                    return
                writer.write(page_response(request, self.files).serialize())
                timeout = KEEP_ALIVE
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not handed_over:
                await _close(writer)

    def _upgrade(
        self, request: Request, protocol: ServerProtocol, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer a WebSocket handshake; True when it is accepted."""
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request):
            log.info("refused a WebSocket from the page of %s", origin)
            writer.write(
                respond(
                    http.HTTPStatus.FORBIDDEN,
                    b"Only this server's own page may use its WebSocket.\n",
                ).serialize()
            )
            return False
        response: Response = protocol.accept(request)
        protocol.send_response(response)
        writer.write(b"".join(protocol.data_to_send()))
        return response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS

    def _origin_allowed(self, origin: str, request: Request) -> bool:
        """This server's own page (the origin the browser reached it by), or one allowed with
        `--web-origin` (PROTOCOL.md, WebSocket)."""
        origin = origin.lower().rstrip("/")
        own = f"{self._scheme}://{request.headers.get('Host', '')}".lower()
        return origin == own or origin in self._origins


async def _read_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: ServerProtocol,
    timeout: float,
) -> Request | None:
    """The next HTTP request, or None when the connection ends, stays silent past `timeout`,
    or sends what is not a request (it is then answered, if the parser has an answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            data = await asyncio.wait_for(reader.read(READ_CHUNK), deadline - loop.time())
        except asyncio.TimeoutError:
            return None
        if not data:
            return None
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Request):
                return event
        if protocol.handshake_exc is not None:
            answer = b"".join(protocol.data_to_send())
            if not answer:
                answer = respond(http.HTTPStatus.BAD_REQUEST, b"Bad request.\n").serialize()
            writer.write(answer)
            return None


async def _close(writer: asyncio.StreamWriter) -> None:
    """End the connection after what was written, within a short grace."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2 * SECONDS)
    except (OSError, asyncio.TimeoutError):
        sockets.reset(writer.transport)
