"""Each side's codec for one connection, as in h11: the peer's bytes in, events out; events in,
bytes for the peer out.  The server's codec tells JSON from plain mode by the first line; the
client's reads the server's banner, then JSON.  No sockets: the caller moves the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from tcpchat.defaults import DEFAULT_LINE_LIMIT
from tcpchat.protocol.events import (
    Banner,
    Bye,
    ClientEvent,
    ErrorCode,
    Hello,
    Invalid,
    Mode,
    ServerEvent,
    Welcome,
)
from tcpchat.protocol.framing import CLIENT_LINE_LIMIT, LineFramer, LineTooLong
from tcpchat.protocol.jsonlines import decode_json, decode_server_json, encode_json
from tcpchat.protocol.plain import banner, parse_plain_command, render_plain


class ServerCodec:
    """Server side of one connection: bytes in, client events (or `Invalid`) out.

    The first complete line chooses the mode. In plain mode, lines before the member has joined
    are names (or, when the server asked for one, a password) and become `Hello` events.
    """

    def __init__(self, line_limit: int = DEFAULT_LINE_LIMIT) -> None:
        self._framer = LineFramer(line_limit)
        self.mode = Mode.UNDECIDED
        self.joined = False
        self._password_for: str | None = None

    def ask_password(self, name: str) -> None:
        """The next plain line is the password for `name` (the server said it needs one)."""
        self._password_for = name

    @staticmethod
    def greeting(server: str, members: int) -> bytes:
        """What the server says first on a connection: the banner (PROTOCOL.md)."""
        return banner(server, members)

    @staticmethod
    def data_to_send() -> bytes:
        """Bytes the framing itself must send back (none for lines)."""
        return b""

    @staticmethod
    def closing() -> bytes:
        """The framing's last words before the connection ends (none for lines)."""
        return b""

    def receive_data(self, data: bytes) -> Iterator[ClientEvent | Invalid]:
        """Take bytes from the peer; yield the event of each line they complete.

        Lazily: a line is parsed only once the previous event was handled, because handling it
        may change how the next line reads (a plain name, then a password, then messages).
        """
        return (self._line_event(line) for line in self._framer.feed(data))

    def _line_event(self, line: bytes | LineTooLong) -> ClientEvent | Invalid:
        if isinstance(line, LineTooLong):
            return Invalid(
                ErrorCode.LINE_TOO_LONG,
                f"That line was longer than {self._framer.limit} bytes and was discarded.",
            )
        if self.mode is Mode.UNDECIDED:
            line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM some Windows tools send first
            self.mode = Mode.JSON if line.startswith(b"{") else Mode.PLAIN
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return Invalid(ErrorCode.BAD_UTF8, "That line was not valid UTF-8 and was discarded.")
        if self.mode is Mode.JSON:
            return decode_json(text)  # type: ignore[return-value]
        if self.joined:
            return parse_plain_command(text)
        if self._password_for is not None:
            name, self._password_for = self._password_for, None
            return Hello(name=name, password=text)
        if text.strip().lower() == "/quit":
            return Bye()
        return Hello(name=text.strip())

    def encode(self, event: ServerEvent) -> bytes:
        """The bytes of one event for this connection, in its mode.

        Sending `welcome` marks the connection joined: from then on plain lines are messages.
        """
        if isinstance(event, Welcome):
            self.joined = True
        if self.mode is Mode.JSON:
            return encode_json(event)
        return render_plain(event)


class ClientCodec:
    """Client side of a JSON-mode connection: server bytes in, server events out.

    The first line is the human banner (PROTOCOL.md, Connection start) and becomes `Banner`.
    """

    def __init__(self, line_limit: int = CLIENT_LINE_LIMIT) -> None:
        self._framer = LineFramer(line_limit)
        self._banner_seen = False

    def receive_data(self, data: bytes) -> list[ServerEvent | Banner | Invalid]:
        """Take bytes from the server; return the events of every line they complete."""
        return [self._line_event(line) for line in self._framer.feed(data)]

    def _line_event(self, line: bytes | LineTooLong) -> ServerEvent | Banner | Invalid:
        if isinstance(line, LineTooLong):
            return Invalid(ErrorCode.LINE_TOO_LONG, "The server sent a line too long to take.")
        text = line.decode("utf-8", errors="replace")
        if not self._banner_seen:
            self._banner_seen = True
            if not text.startswith("{"):
                return Banner(text=text)
        return decode_server_json(text)

    @staticmethod
    def encode(event: ClientEvent) -> bytes:
        """The JSON line for a client event."""
        return encode_json(event)
