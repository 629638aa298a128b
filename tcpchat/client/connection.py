"""A JSON-mode connection to a tcpchat server: connect, join, send, and read events. No UI.

The interactive screen (`ui`) and script mode (`script`) both sit on this.  Failures a person can
cause or meet (unknown host, refused, refused join, lost server, a refused certificate) surface as
`ChatError` with one readable sentence (`errors`); the UI decides how to show it.  With TLS, `open` connects
and `trust` decides whom to trust (`TlsSettings`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import time
from collections import deque
from functools import partial

from tcpchat.client.errors import (
    ChatError,
    ConnectionLost,
    JoinRefused,
    NotTlsServer,
    TlsRefused,
)
from tcpchat.client.trust import (
    NewPin,
    Streams,
    TlsSettings,
    met_over_tls,
    no_longer_tls,
    open_tls,
)
from tcpchat.defaults import READ_CHUNK, SECONDS
from tcpchat.protocol import (
    PROTOCOL_VERSION,
    Banner,
    ClientCodec,
    ClientEvent,
    Error,
    Hello,
    Invalid,
    Ping,
    ServerEvent,
    Welcome,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "ChatConnection",
    "ChatError",
    "ConnectionLost",
    "IncomingEvent",
    "JoinRefused",
    "NotTlsServer",
    "TlsRefused",
    "TlsSettings",
    "describe_connect_error",
    "describe_tls_error",
    "split_address",
]

CONNECT_TIMEOUT = 10 * SECONDS
JOIN_TIMEOUT = 15 * SECONDS
PING_INTERVAL = 30 * SECONDS
PONG_TIMEOUT = 15 * SECONDS

IncomingEvent = ServerEvent | Banner | Invalid


def split_address(text: str) -> tuple[str, int | None]:
    """`HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT` as (host, port or None), as people write a
    server's address (and tcpchat prints it).  A bare IPv6 address such as `::1` is a host: its
    last group is no port.  Raises ValueError with a sentence for what cannot be read."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r} opens an IPv6 address with [ but has no ] to close it.")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} has {rest!r} after ], where only :PORT may follow.")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"{text!r} has no host before the port.")
    if port_text is None:
        return host, None
    if not (port_text.isdigit() and port_text.isascii() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"{port_text!r} is not a port (a number from 1 to 65535).")
    return host, int(port_text)


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

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool = False
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = ClientCodec()
        self._ready: deque[IncomingEvent] = deque()
        self._ping_ids = (str(n) for n in itertools.count(1))
        self._heard = asyncio.Event()  # set whenever bytes arrive: any of them proves life
        self._last_heard = time.monotonic()
        self._lost_reason: str | None = None  # why we cut the connection ourselves
        self._received = False  # any bytes at all from the server yet
        self.banner: str | None = None
        self.welcome: Welcome | None = None
        self.is_tls = tls
        # Set by `open` when it trusted a certificate on first use: the UI must say so.
        self.new_pin: NewPin | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = CONNECT_TIMEOUT,
        tls: TlsSettings | None = None,
    ) -> ChatConnection:
        """Connect, over TLS when `tls` is given or the server was met over TLS before (it is
        in known_hosts: never a byte in clear to it, the password least of all); raises
        ChatError with a readable reason (TlsRefused when the server's certificate is not
        trusted)."""
        new_pin = None
        remembered = tls is None and met_over_tls(host, port)
        if remembered:
            tls = TlsSettings()
        if tls is None:
            reader, writer = await _connect(host, port, timeout, None)
        else:
            try:
                connect = partial(_connect, host, port, timeout)
                (reader, writer), new_pin = await open_tls(host, port, tls, connect)
            except NotTlsServer:
                if not remembered:
                    raise
                raise TlsRefused(no_longer_tls(host, port, tls.known_hosts)) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            from tcpchat.sockets import enable_keepalive

            enable_keepalive(sock)
        connection = cls(reader, writer, tls=tls is not None)
        connection.new_pin = new_pin
        return connection

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
                raise ConnectionLost(self._lost_reason or self._closed_reason())
            if not self._received and not self.is_tls and data[:1] in (b"\x15", b"\x16"):
                # A TLS record (an alert or a handshake) where a banner line should be.
                self.abort()
                raise ConnectionLost("the server answered in TLS; join with --tls.")
            self._received = True
            self._last_heard = time.monotonic()
            self._heard.set()
            self._ready.extend(self._codec.receive_data(data))
        event = self._ready.popleft()
        if isinstance(event, Banner):
            self.banner = event.text
        return event

    def _closed_reason(self) -> str:
        if self.welcome is None and self.banner is not None and self.banner.startswith("! "):
            # Refused at the door (too many connections, a lockout, a ban): the why, in place of
            # the banner (README, "The protocol").
            return f"the server refused the connection: {self.banner[2:]}"
        if self._received:
            return "the server closed the connection."
        if self.is_tls:
            return "the server closed the connection before its greeting."
        # A TLS server drops a plain client's first line without a word.
        return (
            "the server closed the connection before its greeting; if it uses TLS, join with --tls."
        )

    async def join(
        self,
        name: str,
        password: str | None = None,
        *,
        since: int | None = None,
        token: str | None = None,
    ) -> Welcome:
        """Send `hello` and wait for `welcome`; raises JoinRefused or ChatError.

        A rejoin gives `since` (the newest `seq` seen) and `token` (the last welcome's), so
        that it misses nothing and gets its name back (PROTOCOL.md, Resuming).
        """
        hello = Hello(
            name=name, version=PROTOCOL_VERSION, password=password, since=since, token=token
        )
        await self.send(hello)
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


# --- connecting, with TLS when asked --------------------------------------------------------------


async def _connect(host: str, port: int, timeout: float, context: ssl.SSLContext | None) -> Streams:
    """A TCP connection, TLS on top when `context` is given; ssl.SSLCertVerificationError is left
    to the caller (it decides between refusing and pinning), anything else is a ChatError."""
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                limit=READ_CHUNK * 2,
                ssl=context,
                server_hostname=host if context is not None else None,
                ssl_handshake_timeout=timeout if context is not None else None,
            ),
            timeout,
        )
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        refused = NotTlsServer if (exc.reason or "") in _NOT_TLS else TlsRefused
        raise refused(describe_tls_error(host, port, exc)) from None
    except (ConnectionResetError, ConnectionAbortedError) as exc:
        if context is None:
            raise ChatError(describe_connect_error(host, port, exc)) from None
        raise TlsRefused(
            f"{host} port {port} ended the TLS handshake; it may accept only another TLS "
            "version (tcpchat needs 1.2 or newer) or not be a TLS server."
        ) from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise ChatError(describe_connect_error(host, port, exc)) from None


# What OpenSSL says when the answer to a ClientHello is not TLS at all (a plain tcpchat banner).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def describe_tls_error(host: str, port: int, exc: ssl.SSLError) -> str:
    """One sentence for a failed TLS handshake (a certificate that failed verification aside)."""
    reason = exc.reason or ""
    if reason in _NOT_TLS:
        return (
            f"{host} port {port} does not answer in TLS; if it is a tcpchat server without TLS, "
            "join without --tls."
        )
    if reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE"):
        return f"{host} port {port} offers only TLS older than 1.2, which tcpchat refuses."
    if isinstance(exc, ssl.SSLEOFError):
        return f"{host} port {port} closed the connection during the TLS handshake."
    return f"the TLS handshake with {host} port {port} failed ({reason or exc})."
