"""Accepting connections on listening sockets, and pausing while the process has no room for more.

It hands each connection to a callback as a stream pair, as `asyncio.start_server` does, and knows
nothing of the chat.  It replaces asyncio's own accept loop because of what that loop does when
accept() fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): CPython 3.11
reports every failed attempt with a traceback through the loop's exception handler, and keeps
trying for the rest of the backlog, so a full server spends its time writing megabytes of
tracebacks while its members wait; uvloop instead accepts and drops the newcomers.  Here accepting
stops with one warning, the newcomers wait in the kernel's backlog, and it starts again as soon as
one of our connections closes (or after a second, for descriptors freed elsewhere).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine

log = logging.getLogger(__name__)

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# Without a close of ours to wake it, a paused listener tries again this often (ENFILE and ENOMEM
# are freed by other processes; a retry is one failed accept(), nothing more).
RETRY_EVERY = 1.0
# A server that keeps filling up again warns at most this often (the warning is not news twice).
WARN_EVERY = 60.0


class _Protocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, telling the listener when its connection is gone."""

    def __init__(
        self, reader: asyncio.StreamReader, connected: ClientConnected, closed: Callable[[], None]
    ) -> None:
        super().__init__(reader, connected)
        self._tell_listener = closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The socket is closed as this returns (on uvloop maybe a moment later, when an accept
        # tried at once fails again and only waits for the next close or RETRY_EVERY).
        self._tell_listener()


class Listener:
    """Accepts on `sockets` (bound and listening) until `close()`; see the module's note."""

    def __init__(
        self,
        sockets: list[socket.socket],
        connected: ClientConnected,
        *,
        limit: int,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout: float | None = None,
    ) -> None:
        self._sockets = sockets
        self._connected = connected
        self._limit = limit
        self._tls = tls
        self._tls_handshake_timeout = tls_handshake_timeout
        self._room = asyncio.Event()  # set when one of our connections closed
        self._full = False
        self._warned_at: float | None = None
        self._recovery_level = logging.INFO  # said as loudly as the warning was
        self._accepting: set[asyncio.Task[None]] = set()
        self._connecting: set[asyncio.Task[None]] = set()  # until the callback has its streams

    def start(self) -> None:
        for sock in self._sockets:
            self._spawn(self._accept_forever(sock), self._accepting)

    async def close(self) -> None:
        """Stop accepting and close the listening sockets; connections already made go on.

        The sockets are closed only once their accepts are cancelled: the loop must stop
        watching a descriptor before the number can be given to a new socket."""
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()

    @staticmethod
    def _spawn(work: Coroutine[None, None, None], tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.ensure_future(work)
        tasks.add(task)  # a task nobody refers to may be collected before it ends
        task.add_done_callback(tasks.discard)

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except ConnectionError:
                continue  # the peer gave up while it waited: the next one
            except OSError as exc:
                await self._wait_for_room(exc)
                continue
            if self._full:
                self._full = False
                log.log(self._recovery_level, "accepting new connections again")
            self._spawn(self._connect(conn), self._connecting)

    async def _wait_for_room(self, exc: OSError) -> None:
        """One warning for a run of failed accepts, then wait for a close of ours or a second."""
        if not self._full:
            self._full = True
            self._say_full(exc)
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), RETRY_EVERY)
        except asyncio.TimeoutError:
            pass

    def _say_full(self, exc: OSError) -> None:
        """A warning, unless one was given within WARN_EVERY (a server that keeps filling up)."""
        now = asyncio.get_running_loop().time()
        why = exc.strerror or str(exc)
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            log.debug("cannot accept new connections (%s) again", why)
            self._recovery_level = logging.DEBUG
            return
        self._warned_at = now
        self._recovery_level = logging.INFO
        hint = " (raise the open-files limit with 'ulimit -n')" if exc.errno == errno.EMFILE else ""
        log.warning(
            "cannot accept new connections (%s); they wait until a connection closes%s", why, hint
        )

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> _Protocol:
            reader = asyncio.StreamReader(limit=self._limit)
            return _Protocol(reader, self._connected, self._room.set)

        try:
            await loop.connect_accepted_socket(
                protocol,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self._tls_handshake_timeout if self._tls else None,
            )
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.debug("a connection failed before it began: %s", exc)
            conn.close()
            self._room.set()
