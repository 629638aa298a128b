"""A browser member's codec: WebSocket frames in, events out; events in, frames out.

The framing is the `websockets` package's sans-I/O `ServerProtocol` (RFC 6455: masking, control
frames, fragments, the closing handshake); this module only says what a frame means to chat
(PROTOCOL.md, WebSocket): each text message is one JSON object, read as a line of JSON mode is.
Frames to a browser are not masked, so an event's frame is the same bytes for every browser and
is built once per event (`encode_frame`, which the fan-out uses for everyone).
"""

from __future__ import annotations

from collections.abc import Iterator

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from tcpchat.protocol import (
    Bye,
    ErrorCode,
    Event,
    Invalid,
    Mode,
    ServerEvent,
    encode_json,
)
from tcpchat.protocol.jsonlines import decode_json

# A message past this many bytes ends the connection (close code 1009): up to it, a message over
# the server's line limit is refused with `line_too_long`, as a long line is, and the member
# goes on.  Only this much of a message is ever held.
MAX_MESSAGE = 1024 * 1024


def encode_frame(event: ServerEvent) -> bytes:
    """`event` as one unmasked text frame holding its JSON object."""
    payload = encode_json(event).rstrip(b"\n")
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class WebSocketCodec:
    """The codec of one browser connection, once its WebSocket handshake is done."""

    mode = Mode.WEB

    def __init__(self, protocol: ServerProtocol, line_limit: int) -> None:
        self._protocol = protocol
        self._line_limit = line_limit
        self._fragments: list[bytes] | None = None  # a text message arriving in pieces
        self._fragment_size = 0
        self._binary = False

    def receive_data(self, data: bytes) -> Iterator[Event | Invalid]:
        """The events of the messages `data` completes; a close from the browser is `Bye`."""
        protocol = self._protocol
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode is Opcode.CLOSE:
                yield Bye()
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                event = self._message_part(frame)
                if event is not None:
                    yield event
        if protocol.state is State.CLOSED and protocol.close_rcvd is None:
            yield Bye()  # the browser broke the protocol: websockets has closed it (1002)

    def _message_part(self, frame: Frame) -> Event | Invalid | None:
        """One frame of a message: the message's event once its last frame is in."""
        if frame.opcode is not Opcode.CONT:
            self._fragments, self._fragment_size = [], 0
            self._binary = frame.opcode is Opcode.BINARY
        if self._fragments is None:
            return None  # a continuation of a message already refused
        self._fragment_size += len(frame.data)
        if self._fragment_size <= self._line_limit:
            self._fragments.append(bytes(frame.data))
        if not frame.fin:
            return None
        data, self._fragments = b"".join(self._fragments), None
        if self._binary:
            return Invalid(ErrorCode.BAD_MESSAGE, "Send each event as a text frame of JSON.")
        if self._fragment_size > self._line_limit:
            return Invalid(
                ErrorCode.LINE_TOO_LONG,
                f"That message was longer than {self._line_limit} bytes and was discarded.",
            )
        return decode_json(data.decode("utf-8", "replace"))  # text frames are valid UTF-8

    def encode(self, event: ServerEvent) -> bytes:
        return encode_frame(event)

    def ask_password(self, name: str) -> None:
        """Plain mode only: a browser sends its password in its `hello`."""

    @staticmethod
    def greeting(server: str, members: int) -> bytes:
        """No banner over WebSocket: the browser speaks first (PROTOCOL.md, WebSocket)."""
        return b""

    def data_to_send(self) -> bytes:
        """Control frames the framing answers with: a pong, the reply to a close."""
        return b"".join(self._protocol.data_to_send())

    def closing(self) -> bytes:
        """The close frame that ends the WebSocket (a reply to the browser's own, if it sent one)."""
        protocol = self._protocol
        if protocol.state is State.OPEN:
            protocol.send_close(CloseCode.NORMAL_CLOSURE)
        return b"".join(protocol.data_to_send())
