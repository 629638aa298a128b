"""The tcpchat wire protocol (PROTOCOL.md, version 1) as a sans-I/O codec.

Bytes in, typed events out; events in, bytes out, shared by the server, the client, the tests
and the load tools.  Nothing here touches a socket, a clock or asyncio: callers pass bytes and
timestamps in and take bytes and events out (as h11 does).  Standard library only; of tcpchat
it uses just `tcpchat.defaults` (the numbers) and `tcpchat.words` (how plain mode says things).

- `events`: one frozen class per wire `type`, error codes, leave reasons, modes, `Invalid`
- `rules`: what a name and a message's text may be
- `framing`: a byte stream into lines under a limit
- `jsonlines`: events to JSON lines and back
- `plain`: plain mode's commands in, its readable lines out
- `codec`: one connection's codec, the server's and the client's

This module gathers their public names: import them from `tcpchat.protocol`.
"""

from __future__ import annotations

from tcpchat.defaults import (
    DEFAULT_LINE_LIMIT,
    DEFAULT_MAX_TEXT,
    DEFAULT_PORT,
    KIB,
    PROTOCOL_VERSION,
)
from tcpchat.protocol.codec import ClientCodec, ServerCodec
from tcpchat.protocol.events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    Ack,
    Banner,
    Bye,
    ClientEvent,
    Dm,
    Error,
    ErrorCode,
    Event,
    Hello,
    HelpRequest,
    HistoryPage,
    HistoryRequest,
    Invalid,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Mode,
    Nick,
    Ping,
    Pong,
    Private,
    ProtocolUsageError,
    Renamed,
    Results,
    Say,
    SearchRequest,
    ServerEvent,
    Shutdown,
    Welcome,
    Who,
)
from tcpchat.protocol.framing import CLIENT_LINE_LIMIT, OVERSIZED_LINE, LineFramer, LineTooLong
from tcpchat.protocol.jsonlines import (
    decode_json,
    decode_server_json,
    encode_json,
    event_to_dict,
    format_ts,
    parse_ts,
)
from tcpchat.protocol.plain import PLAIN_HELP, banner, parse_plain_command, render_plain
from tcpchat.protocol.rules import (
    INVISIBLE_LETTERS,
    MAX_NAME_LENGTH,
    NAME_PUNCTUATION,
    RESERVED_NAME,
    RESERVED_NAMES,
    confusable_keys,
    fold_name,
    is_forbidden_char,
    name_problem,
    normalize_name,
    strip_unsafe,
    text_problem,
)

__all__ = [
    "CLIENT_EVENTS",
    "CLIENT_LINE_LIMIT",
    "DEFAULT_LINE_LIMIT",
    "DEFAULT_MAX_TEXT",
    "DEFAULT_PORT",
    "INVISIBLE_LETTERS",
    "KIB",
    "MAX_NAME_LENGTH",
    "NAME_PUNCTUATION",
    "OVERSIZED_LINE",
    "PLAIN_HELP",
    "PROTOCOL_VERSION",
    "RESERVED_NAME",
    "RESERVED_NAMES",
    "SERVER_EVENTS",
    "Ack",
    "Banner",
    "Bye",
    "ClientCodec",
    "ClientEvent",
    "Dm",
    "Error",
    "ErrorCode",
    "Event",
    "Hello",
    "HelpRequest",
    "HistoryPage",
    "HistoryRequest",
    "Invalid",
    "Joined",
    "LeaveReason",
    "Left",
    "LineFramer",
    "LineTooLong",
    "Members",
    "Message",
    "Mode",
    "Nick",
    "Ping",
    "Pong",
    "Private",
    "ProtocolUsageError",
    "Renamed",
    "Results",
    "Say",
    "SearchRequest",
    "ServerCodec",
    "ServerEvent",
    "Shutdown",
    "Welcome",
    "Who",
    "banner",
    "confusable_keys",
    "decode_json",
    "decode_server_json",
    "encode_json",
    "event_to_dict",
    "fold_name",
    "format_ts",
    "is_forbidden_char",
    "name_problem",
    "normalize_name",
    "parse_plain_command",
    "parse_ts",
    "render_plain",
    "strip_unsafe",
    "text_problem",
]
