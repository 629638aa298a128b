"""Everything the server's operator can set, and every limit that follows from it.

A limit that depends on another (the flood burst on the rate, the longest line read on the
longest message) is derived here and nowhere else, so a `ServerConfig` built directly by a test
or an embedding program behaves as the one `tcpchat serve` builds.  No I/O.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from tcpchat.defaults import SECONDS
from tcpchat.protocol import DEFAULT_LINE_LIMIT, DEFAULT_MAX_TEXT, DEFAULT_PORT, KIB
from tcpchat.server.flood import FloodLimits
from tcpchat.server.guard import GuardLimits
from tcpchat.server.room import RoomLimits
from tcpchat.server.store.paths import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_MESSAGES

BURST_SECONDS = 3  # a member may send this many seconds' worth of lines at once
# The longest text may arrive with every character as a 12-byte JSON escape (a surrogate pair).
ESCAPED_CHARACTER = 12
LINE_OVERHEAD = 1024  # the rest of a `say` line: its type, its id, the quotes and braces


@dataclass(frozen=True)
class ServerConfig:
    """Everything the operator can set, with units in the defaults.

    `burst` and `line_limit` are None unless set on purpose: then they follow `rate` and
    `max_text` (see `effective_burst` and `effective_line_limit`), also in a copy made with
    `dataclasses.replace` that changes only those.
    """

    host: str | None = None
    port: int = DEFAULT_PORT
    name: str = field(default_factory=socket.gethostname)
    motd: str | None = None
    max_text: int = DEFAULT_MAX_TEXT
    max_clients: int | None = None
    history: int = 50
    password: str | None = None
    # Bytes in one line read from a client, its line break included (None: room for `max_text`).
    line_limit: int | None = None
    registration_timeout: float = 60 * SECONDS
    idle_timeout: float | None = None
    # Room for ~60 of the longest messages, or hundreds of ordinary ones, before `slow`.
    outgoing_limit: int = 256 * KIB
    # Lines a member may send per second, and in one burst, before its reading is slowed (0: never).
    rate: float = 20.0
    burst: int | None = None  # None: BURST_SECONDS of `rate`
    # Bytes a second a member may send (in bursts of four seconds' worth); 0 for lines only.
    # An address may send three times the lines and twice the bytes of one member.
    byte_rate: float = 16 * KIB
    shutdown_grace: float = 1.5 * SECONDS
    # Per client address (an IPv6 /64 counts as one address): connections open at once, and new
    # connections a minute.  None turns a limit off.
    max_per_address: int | None = 32
    connect_rate: int | None = 60
    # Wrong passwords from one address (in ten minutes) before it must wait `auth_lockout`.
    auth_failures: int = 5
    auth_lockout: float = 60 * SECONDS
    # Wrong passwords a minute from all addresses together before only addresses that once gave
    # the right one may try (None: no such limit).
    global_auth_failures: int | None = 30
    # With a context, every connection is TLS (tcpchat.tls makes one from a certificate).
    tls: ssl.SSLContext | None = None
    # A real client finishes its handshake in a few round trips; a socket still silent then is
    # cut, so that idle sockets cannot hold the handshake slots.
    handshake_timeout: float = 10 * SECONDS
    # The history file (tcpchat.server.store); None keeps history in memory only, as a server
    # built in a program or a test does unless it asks (`tcpchat serve` chooses a file).
    db: Path | None = None
    # The web port (`tcpchat.server.web`: the chat page and browser members; None: off), and the
    # pages of other origins allowed to use its WebSocket (its own page always may).
    web_port: int | None = None
    web_origins: tuple[str, ...] = ()
    # A Redis URL: this process is one of several sharing the room there (tcpchat.server.cluster).
    cluster: str | None = None
    # Retention in the file: days and messages a room kept (0: no limit).
    keep_days: int = DEFAULT_KEEP_DAYS
    keep_messages: int = DEFAULT_KEEP_MESSAGES

    @property
    def effective_burst(self) -> int:
        """Lines a member may send at once: `burst`, or BURST_SECONDS of `rate` (at least one)."""
        if self.burst is not None:
            return self.burst
        return max(1, round(BURST_SECONDS * self.rate))

    @property
    def effective_line_limit(self) -> int:
        """The longest line read: `line_limit`, or room for the longest text however escaped."""
        if self.line_limit is not None:
            return self.line_limit
        return max(DEFAULT_LINE_LIMIT, ESCAPED_CHARACTER * self.max_text + LINE_OVERHEAD)

    def guard_limits(self) -> GuardLimits:
        return GuardLimits(
            max_per_address=self.max_per_address,
            connect_rate=self.connect_rate,
            auth_failures=self.auth_failures,
            auth_lockout=self.auth_lockout,
            global_auth_failures=self.global_auth_failures,
        )

    def flood_limits(self) -> FloodLimits:
        return FloodLimits(rate=self.rate, burst=self.effective_burst, byte_rate=self.byte_rate)

    def room_limits(self) -> RoomLimits:
        return RoomLimits(
            server_name=self.name,
            max_text=self.max_text,
            history=self.history,
            max_members=self.max_clients,
            motd=self.motd,
            password=self.password,
        )
