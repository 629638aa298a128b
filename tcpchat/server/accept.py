"""Accepting connections on listening sockets, and pausing while the process has no room for more.

It hands each accepted socket, bare (no transport, nothing read), to a coroutine of the server's,
and knows nothing of the chat: the server decides at its door on the bare socket, and starts TLS,
if any, on a fresh transport.  It replaces asyncio's own accept loop because of what that loop does when
accept() fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): CPython 3.11
reports every failed attempt with a traceback through the loop's exception handler, and keeps
trying for the rest of the backlog, so a full server spends its time writing megabytes of
tracebacks while its members wait; uvloop instead accepts and drops the newcomers.  Here accepting
stops with one warning, the newcomers wait in the kernel's backlog, and it starts again as soon as
one of our connections closes (the server calls `freed`) or after a second, for descriptors freed
elsewhere.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Coroutine

log = logging.getLogger(__name__)

Accepted = Callable[[socket.socket], Coroutine[None, None, None]]

# Without a close of ours to wake it, a paused listener tries again this often (ENFILE and ENOMEM
# are freed by other processes; a retry is one failed accept(), nothing more).
RETRY_EVERY = 1.0
# A server that keeps filling up again warns at most this often (the warning is not news twice).
WARN_EVERY = 60.0


class Listener:
    """Accepts on `sockets` (bound and listening) until `close()`; see the module's note."""

    def __init__(self, accepted: Accepted) -> None:
        self._sockets: list[socket.socket] = []
        self._accepted = accepted
        self._room = asyncio.Event()  # set when one of our connections closed
        self._full = False
        self._warned_at: float | None = None
        self._recovery_level = logging.INFO  # said as loudly as the warning was
        self._accepting: set[asyncio.Task[None]] = set()
        self._handling: set[asyncio.Task[None]] = set()  # each accepted socket's coroutine

    def start(self, sockets: list[socket.socket]) -> None:
        """Accept on `sockets` (bound and listening), which are closed by `close()`."""
        self._sockets = sockets
        for sock in sockets:
            sock.setblocking(False)
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
                conn = await _accept(loop, sock)
            except ConnectionError:
                continue  # the peer gave up while it waited: the next one
            except OSError as exc:
                await self._wait_for_room(exc)
                continue
            if self._full:
                self._full = False
                log.log(self._recovery_level, "accepting new connections again")
            self._spawn(self._accepted(conn), self._handling)

    def freed(self) -> None:
        """One of the server's connections has closed: a paused listener may accept again.

        (On uvloop the descriptor may be closed a moment later; an accept tried at once then
        fails again and waits for the next close, or RETRY_EVERY.)"""
        self._room.set()

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


async def _accept(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> socket.socket:
    """The next connection on `sock`.

    Where the loop can watch a descriptor, it waits for `sock` to be readable and accepts
    itself: a task cancelled (the server stopping) while a connection arrives has then taken
    nothing, where `loop.sock_accept` can have accepted a socket that its cancelled caller never
    sees (left to the garbage collector).  Elsewhere (Windows' proactor loop) it is asyncio's."""
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            pass
        else:
            conn.setblocking(False)
            return conn
        readable = loop.create_future()
        try:
            loop.add_reader(sock.fileno(), _set_once, readable)
        except NotImplementedError:
            conn, _ = await loop.sock_accept(sock)
            return conn
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
