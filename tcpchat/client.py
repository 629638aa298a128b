"""A JSON-mode connection to a tcpchat server: connect, join, send, and read events. No UI.

The interactive screen (`ui`) and script mode (`script`) both sit on this.  Failures a person can
cause or meet (unknown host, refused, refused join, lost server) surface as `ChatError` with one
readable sentence; the UI decides how to show it.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import deque

from tcpchat.protocol import (
    PROTOCOL_VERSION,
    Banner,
    ClientConnection,
    ClientEvent,
    Error,
    ErrorCode,
    Hello,
    Invalid,
    Ping,
    ServerEvent,
    Welcome,
)

SECONDS = 1.0
CONNECT_TIMEOUT = 10 * SECONDS
JOIN_TIMEOUT = 15 * SECONDS
PING_INTERVAL = 30 * SECONDS
PONG_TIMEOUT = 15 * SECONDS
READ_CHUNK = 64 * 1024

IncomingEvent = ServerEvent | Banner | Invalid


class ChatError(Exception):
    """Something a person should be told in one sentence (`str(error)`)."""


class ConnectionLost(ChatError):
    """The server closed the connection or stopped answering."""


class JoinRefused(ChatError):
    """The server answered `hello` with an error; `error.code` says which."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error

    @property
    def can_retry(self) -> bool:
        """True for `bad_name` and `name_taken`: the connection is open for another `hello`."""
        return self.error.code in (ErrorCode.BAD_NAME, ErrorCode.NAME_TAKEN)


def describe_connect_error(host: str, port: int, exc: BaseException) -> str:
    """One sentence for why connecting to `host`:`port` failed."""
    if isinstance(exc, socket.gaierror):
        return f"cannot find the host {host!r}; check the name."
    if isinstance(exc, ConnectionRefusedError):
        return f"{host} refused the connection on port {port}; is the server running?"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"{host} port {port} did not answer within {CONNECT_TIMEOUT:g} seconds."
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect to {host} port {port}: {exc.strerror[0].lower()}{exc.strerror[1:]}."
    return f"cannot connect to {host} port {port}: {exc}."


class ChatConnection:
    """One open connection in JSON mode; `next_event()` reads, `send()` writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = ClientConnection()
        self._ready: deque[IncomingEvent] = deque()
        self._ping_ids = (str(n) for n in itertools.count(1))
        self._heard = asyncio.Event()  # set whenever bytes arrive: any of them proves life
        self._last_heard = time.monotonic()
        self._lost_reason: str | None = None  # why we cut the connection ourselves
        self.banner: str | None = None
        self.welcome: Welcome | None = None

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float = CONNECT_TIMEOUT
    ) -> ChatConnection:
        """Connect; raises ChatError with a readable reason."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_CHUNK * 2), timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise ChatError(describe_connect_error(host, port, exc)) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            from tcpchat.sockets import enable_keepalive

            enable_keepalive(sock)
        return cls(reader, writer)

    async def send(self, event: ClientEvent) -> None:
        """Write one event; raises ConnectionLost when the server is gone."""
        if self._writer.is_closing():
            raise ConnectionLost("the connection to the server is closed.")
        self._writer.write(self._codec.encode(event))
        try:
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            raise ConnectionLost("lost the connection to the server.") from exc

    async def next_event(self) -> IncomingEvent:
        """The next event from the server; raises ConnectionLost at its end."""
        while not self._ready:
            try:
                data = await self._reader.read(READ_CHUNK)
            except OSError as exc:
                reason = self._lost_reason or "lost the connection to the server."
                raise ConnectionLost(reason) from exc
            if not data:
                raise ConnectionLost(self._lost_reason or "the server closed the connection.")
            self._last_heard = time.monotonic()
            self._heard.set()
            self._ready.extend(self._codec.receive_data(data))
        event = self._ready.popleft()
        if isinstance(event, Banner):
            self.banner = event.text
        return event

    async def join(self, name: str, password: str | None = None) -> Welcome:
        """Send `hello` and wait for `welcome`; raises JoinRefused or ChatError."""
        await self.send(Hello(name=name, version=PROTOCOL_VERSION, password=password))
        try:
            return await asyncio.wait_for(self._await_welcome(), JOIN_TIMEOUT)
        except asyncio.TimeoutError:
            raise ChatError(
                f"the server did not answer within {JOIN_TIMEOUT:g} seconds; is it a tcpchat server?"
            ) from None

    async def _await_welcome(self) -> Welcome:
        while True:
            event = await self.next_event()
            if isinstance(event, Welcome):
                self.welcome = event
                return event
            if isinstance(event, Error):
                raise JoinRefused(event)
            if isinstance(event, Invalid):
                raise ChatError("the server does not speak the tcpchat protocol.")

    async def keepalive(self, interval: float = PING_INTERVAL, grace: float = PONG_TIMEOUT) -> None:
        """After `interval` of silence send `ping`; cut the connection if `grace` passes silent too.

        Any bytes from the server count as an answer, not only the `pong`: a server working
        through a long backlog of our lines answers pings late but is alive.  Cutting the
        connection makes the reader raise ConnectionLost, so a dead server is noticed even
        without TCP errors.  Someone must be calling `next_event()` for bytes to be seen.
        """
        while not self._writer.is_closing():
            await asyncio.sleep(max(0.0, self._last_heard + interval - time.monotonic()))
            if time.monotonic() - self._last_heard < interval:
                continue
            self._heard.clear()
            try:
                await self.send(Ping(id=next(self._ping_ids)))
                await asyncio.wait_for(self._heard.wait(), grace)
            except (asyncio.TimeoutError, ConnectionLost):
                self._lost_reason = (
                    f"the server stopped answering (nothing for {interval + grace:g} seconds)."
                )
                self.abort()
                return

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed or closing, by either side."""
        return self._writer.transport.is_closing()

    def abort(self) -> None:
        """Drop the connection at once (the server sees it as `disconnected`)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        """Close politely: flush what was written, then wait briefly for the close to finish."""
        if self._writer.is_closing():
            return
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2 * SECONDS)
        except (OSError, asyncio.TimeoutError):
            self._writer.transport.abort()
