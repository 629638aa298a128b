"""Line framing (PROTOCOL.md, Transport and framing): a byte stream cut into lines under a
limit, whatever the peer sends and however its bytes arrive.  Bytes only: what a line means is
the codec's business.
"""

from __future__ import annotations

from tcpchat.defaults import DEFAULT_LINE_LIMIT, KIB
from tcpchat.protocol.events import ProtocolUsageError

# The server's lines can be far longer than a client's: `welcome` carries the history.
CLIENT_LINE_LIMIT = 16 * KIB * KIB


class LineTooLong:
    """The type of `OVERSIZED_LINE`, the marker `LineFramer` yields for a line over the limit
    (its bytes are discarded).  The codecs answer it with the error `ErrorCode.LINE_TOO_LONG`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "OVERSIZED_LINE"


OVERSIZED_LINE = LineTooLong()


class LineFramer:
    """Splits a byte stream into lines of at most `limit` bytes, without the `\\r\\n` or `\\n`.

    A longer line yields `OVERSIZED_LINE` once and the rest of it is dropped as it arrives, so
    between calls the buffer never holds more than `limit + 1` bytes whatever the peer sends.
    """

    def __init__(self, limit: int = DEFAULT_LINE_LIMIT) -> None:
        if limit < 1:
            raise ProtocolUsageError("the line limit must be at least 1 byte")
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """Take the next bytes of the stream; return the lines they complete."""
        lines: list[bytes | LineTooLong] = []
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", max(start, self._scanned))) >= 0:
            line = bytes(buffer[start:end])
            start = end + 1
            self._scanned = start
            if self._discarding:
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            lines.append(OVERSIZED_LINE if len(line) > self.limit else line)
        del buffer[:start]
        self._scanned = len(buffer)
        # One byte of slack: a line of exactly `limit` bytes may be waiting for "\n" after its "\r".
        if len(buffer) > self.limit + 1 or (
            len(buffer) == self.limit + 1 and not buffer.endswith(b"\r")
        ):
            if not self._discarding:
                lines.append(OVERSIZED_LINE)
                self._discarding = True
            buffer.clear()
            self._scanned = 0
        return lines

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet complete."""
        return len(self._buffer)
