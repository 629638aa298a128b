"""The door: who gets in, on each listening port, before a byte is read or a handshake begun.

Every accepted socket, whichever port it came to (the chat port, the web port), passes the same
door: the address guard (bans, connections per address, connection rate), a budget for telling
refused peers why, and with TLS a fair share of the handshake slots.  The door then starts TLS,
if any, on a fresh transport (nothing of the client's hello has been read before it) and hands
the streams to that port's `Serve`, together with the refusal to tell, if any.  It keeps the
count of each address's connections right however a connection ends.  It knows nothing of
chat: what a connection says is the `Serve`'s business.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from tcpchat import sockets
from tcpchat.defaults import READ_CHUNK
from tcpchat.server.accept import Listener
from tcpchat.server.guard import AddressGuard, HandshakeSlots
from tcpchat.server.member import peer_host
from tcpchat.server.refusals import Refusals

MAX_HANDSHAKES = 256  # TLS handshakes in progress at once (see HandshakeSlots)
MAX_HANDSHAKES_PER_ADDRESS = 16

log = logging.getLogger("tcpchat.server")

# Serves one connection the door let in (refusal None) or refused (a sentence to tell it), until
# it ends.
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "str | None"], Awaitable[None]]


class Door:
    """The door of every port of one server (see the module's note)."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        handshake_timeout: float,
        stopping: Callable[[], bool],
    ) -> None:
        self.guard = guard
        self.refusals = Refusals()
        self.handshake_timeout = handshake_timeout
        self._stopping = stopping
        self._handshakes: HandshakeSlots[asyncio.Task[None]] = HandshakeSlots(
            MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDRESS
        )

    def listener(self, serve: Serve, tls: ssl.SSLContext | None) -> Listener:
        """A listener whose sockets come through this door to `serve` (with TLS if given)."""
        listener = Listener(lambda sock: self._admit(sock, serve, tls, listener))
        return listener

    def cancel_handshakes(self) -> None:
        """Give up every TLS handshake under way (the server is stopping)."""
        for handshake in self._handshakes.holders():
            handshake.cancel()

    async def _admit(
        self,
        sock: socket.socket,
        serve: Serve,
        tls: ssl.SSLContext | None,
        listener: Listener,
    ) -> None:
        """One accepted socket: the guard's word, then (with TLS) a fair handshake slot and the
        handshake, then served until it ends.

        The guard decides on the bare socket, before any handshake: a handshake costs memory and
        CPU, so a peer over its address's limits gets none for the asking.
        """
        try:
            host = peer_host(sock.getpeername())
        except OSError:  # reset while it waited in the backlog
            sock.close()
            listener.freed()
            return
        sockets.enable_keepalive(sock)
        stopping = self._stopping()
        refusal = None if stopping else self.guard.admit(host)
        cut = refusal is not None and not self.refusals.may_tell(host, tls=tls is not None)
        if stopping or cut:  # a flood: telling each one why would be its win
            sockets.reset_socket(sock)
            sock.close()
            listener.freed()
            return
        if refusal is not None:
            self.refusals.telling += 1  # from the door, not after a handshake cut short
        task = asyncio.current_task()
        assert task is not None
        if tls is not None:
            evicted = self._handshakes.enter(host, task)
            if evicted is not None:  # slots are scarce: the oldest of the greediest address goes
                evicted.cancel()
        reader = asyncio.StreamReader(limit=READ_CHUNK * 2)
        # Ours, not the one the loop returns: with TLS, uvloop returns its own TLS protocol.
        protocol = asyncio.StreamReaderProtocol(reader)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=tls,
                ssl_handshake_timeout=None if tls is None else self.handshake_timeout,
            )
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError, EOFError) as exc:
            log.debug("the connection of %s failed before it began: %r", host, exc)
            sockets.reset_socket(sock)  # its transport closes it, with a reset
            self._release(host, refusal, listener)
            return
        finally:
            # Done with the handshake: from here an eviction must not cancel this connection.
            self._handshakes.leave(task)
        # Served in this task, as `asyncio.open_connection` makes its streams: a second task
        # (`start_server`'s callback) would cost every connection one more task, and its
        # callback would keep this one's frame alive for as long as the connection lasts.
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._served(serve(reader, writer, refusal), host, refusal, listener)

    async def _served(
        self, serving: Awaitable[None], host: str, refusal: str | None, listener: Listener
    ) -> None:
        try:
            await serving
        finally:
            self._release(host, refusal, listener)

    def _release(self, host: str, refusal: str | None, listener: Listener) -> None:
        """A connection through this door has ended: its address may have another."""
        if refusal is None:
            self.guard.release(host)
        else:
            self.refusals.telling -= 1
        listener.freed()
