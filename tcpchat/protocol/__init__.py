"""The tcpchat wire protocol (PROTOCOL.md, version 1) as a sans-I/O codec.

Bytes in, typed events out; events in, bytes out.  Line framing with its limit, UTF-8 handling,
validation of names and text, error codes and the plain-text rendering all live here, shared by the
server, the client, the tests and load tools.  Nothing in this module touches a socket, a clock or
asyncio: callers pass bytes and timestamps in and take bytes and events out (as h11 does).
"""

from __future__ import annotations

import enum
import functools
import itertools
import json
import re
import types
import typing
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, Union

# The protocol's numbers live in tcpchat.defaults (cheap to import) and are part of this module too.
from tcpchat.defaults import DEFAULT_LINE_LIMIT as DEFAULT_LINE_LIMIT
from tcpchat.defaults import DEFAULT_MAX_TEXT as DEFAULT_MAX_TEXT
from tcpchat.defaults import DEFAULT_PORT as DEFAULT_PORT
from tcpchat.defaults import KIB as KIB
from tcpchat.defaults import PROTOCOL_VERSION as PROTOCOL_VERSION
from tcpchat.protocol.confusables import skeleton

# How plain mode says counts, times and leaves, in the words the chat screen uses too.
from tcpchat.words import LEAVE_WORDS as LEAVE_WORDS
from tcpchat.words import clock as clock
from tcpchat.words import members_online

MAX_NAME_LENGTH = 32
# The sender of the operator's announcements and warnings; no member may take it.
RESERVED_NAME = "server"
RESERVED_NAMES = frozenset({RESERVED_NAME})
# Letters (category Lo) that draw nothing: a name made of them would look empty or like another.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
NAME_PUNCTUATION = frozenset("_-.")

plural_members = members_online


class ProtocolUsageError(Exception):
    """Our own code misused the codec (a bug here, never the peer's fault)."""


class ErrorCode(str, enum.Enum):
    """The `error` codes of PROTOCOL.md; each value is the exact wire string."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    BAD_NAME = "bad_name"
    NAME_TAKEN = "name_taken"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    BAD_TEXT = "bad_text"
    LINE_TOO_LONG = "line_too_long"
    BAD_UTF8 = "bad_utf8"
    NO_SUCH_MEMBER = "no_such_member"
    VERSION_UNSUPPORTED = "version_unsupported"
    AUTH_FAILED = "auth_failed"
    SERVER_FULL = "server_full"

    @property
    def is_fatal(self) -> bool:
        """After a fatal error the server closes the connection (PROTOCOL.md, Errors)."""
        return self in _FATAL_CODES


_FATAL_CODES = frozenset(
    {ErrorCode.VERSION_UNSUPPORTED, ErrorCode.AUTH_FAILED, ErrorCode.SERVER_FULL}
)


class LeaveReason(str, enum.Enum):
    """Why a member left; the values are the wire strings of `left.reason`."""

    QUIT = "quit"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    KICKED = "kicked"
    SLOW = "slow"
    SHUTDOWN = "shutdown"


class Mode(enum.Enum):
    """How a connection talks: chosen by its first line (PROTOCOL.md, Connection start)."""

    UNDECIDED = "undecided"
    JSON = "json"
    PLAIN = "plain"


# --------------------------------------------------------------------------------------------
# Events.  One frozen class per wire `type`; `TYPE` is that wire string.


@dataclass(frozen=True, slots=True)
class Event:
    TYPE: ClassVar[str] = ""
    # Fields with a default for our own code that a peer must still send.
    WIRE_REQUIRED: ClassVar[frozenset[str]] = frozenset()


# Client to server.


@dataclass(frozen=True, slots=True)
class Hello(Event):
    TYPE: ClassVar[str] = "hello"
    WIRE_REQUIRED: ClassVar[frozenset[str]] = frozenset({"version"})
    name: str
    version: int = PROTOCOL_VERSION
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Say(Event):
    TYPE: ClassVar[str] = "say"
    text: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Dm(Event):
    TYPE: ClassVar[str] = "dm"
    to: str
    text: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Nick(Event):
    TYPE: ClassVar[str] = "nick"
    name: str


@dataclass(frozen=True, slots=True)
class Who(Event):
    TYPE: ClassVar[str] = "who"


@dataclass(frozen=True, slots=True)
class Ping(Event):
    TYPE: ClassVar[str] = "ping"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Bye(Event):
    TYPE: ClassVar[str] = "bye"


@dataclass(frozen=True, slots=True)
class HelpRequest(Event):
    """`/help` typed by a plain-mode member; it has no JSON form."""

    TYPE: ClassVar[str] = "help"


# Server to client.


@dataclass(frozen=True, slots=True)
class Message(Event):
    TYPE: ClassVar[str] = "message"
    seq: int
    sender: str  # wire field `from`, a Python keyword
    text: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Welcome(Event):
    TYPE: ClassVar[str] = "welcome"
    name: str
    members: int
    names: list[str]
    server: str
    motd: str | None
    max_text: int
    version: int
    history: list[Message] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Private(Event):
    TYPE: ClassVar[str] = "private"
    sender: str
    to: str
    text: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Joined(Event):
    TYPE: ClassVar[str] = "joined"
    name: str
    members: int
    ts: datetime


@dataclass(frozen=True, slots=True)
class Left(Event):
    TYPE: ClassVar[str] = "left"
    name: str
    members: int
    reason: LeaveReason
    ts: datetime


@dataclass(frozen=True, slots=True)
class Renamed(Event):
    TYPE: ClassVar[str] = "renamed"
    old: str
    new: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Members(Event):
    TYPE: ClassVar[str] = "members"
    names: list[str]
    members: int


@dataclass(frozen=True, slots=True)
class Ack(Event):
    TYPE: ClassVar[str] = "ack"
    id: str | None
    seq: int | None
    ts: datetime
    delivered: int


@dataclass(frozen=True, slots=True)
class Pong(Event):
    TYPE: ClassVar[str] = "pong"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Error(Event):
    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Shutdown(Event):
    TYPE: ClassVar[str] = "shutdown"
    message: str
    # tcpchat's addition (PROTOCOL.md: unknown extra fields are ignored): why this connection
    # ends when it is not the whole server stopping (`kicked`, `timeout`), so that a client
    # knows not to reconnect.  Omitted when the server stops.
    reason: LeaveReason | None = None


@dataclass(frozen=True, slots=True)
class Banner(Event):
    """The server's first line, written for people; it has no JSON form."""

    TYPE: ClassVar[str] = "banner"
    text: str


ClientEvent = Hello | Say | Dm | Nick | Who | Ping | Bye | HelpRequest
ServerEvent = (
    Welcome | Message | Private | Joined | Left | Renamed | Members | Ack | Pong | Error | Shutdown
)

CLIENT_EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (Hello, Say, Dm, Nick, Who, Ping, Bye)
}
SERVER_EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        Welcome,
        Message,
        Private,
        Joined,
        Left,
        Renamed,
        Members,
        Ack,
        Pong,
        Error,
        Shutdown,
    )
}
# The server's lines can be far longer than a client's: `welcome` carries the history.
CLIENT_LINE_LIMIT = 16 * KIB * KIB
# Python names that differ from the wire field names.
_WIRE_NAMES = {"sender": "from"}


# --------------------------------------------------------------------------------------------
# Validation of names and text (PROTOCOL.md, Rules).

_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def normalize_name(name: str) -> str:
    """The form in which a name is stored and shown: NFC, so composed and decomposed `é` agree."""
    return unicodedata.normalize("NFC", name.strip())


def fold_name(name: str) -> str:
    """The key under which names are unique: NFKC plus case folding (`Alice` = `ＡＬＩＣＥ`)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


_DROP_NAME_PUNCTUATION = str.maketrans(dict.fromkeys(NAME_PUNCTUATION))


def confusable_keys(name: str) -> frozenset[str]:
    """Keys that two names share when they look alike (UTS #39 skeletons), whatever their case.

    A name is one name in every case (`fold_name`), so each of its forms is looked at: as
    written, folded and in capitals.  `аlice` (Cyrillic а) looks like `alice` as written, `Тom`
    (Cyrillic Т) like `TOM`, `biII` (capital I) like `bill`.  The punctuation names may hold
    (`_-.`) is left out of the keys, and so are letters that look like it: `server.` or `al_ice`
    would pass for `server` or `alice` at the end of a sentence or in a hurry.
    """
    folded = fold_name(name)
    return frozenset(
        skeleton(form).translate(_DROP_NAME_PUNCTUATION) for form in (name, folded, folded.upper())
    )


@functools.cache
def _reserved_keys() -> frozenset[str]:
    return frozenset().union(*(confusable_keys(name) for name in RESERVED_NAMES))


def name_problem(name: str) -> str | None:
    """Why `name` (already normalised) is not a valid name, as a sentence; None when it is."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"A name must be 1 to {MAX_NAME_LENGTH} characters long."
    for char in name:
        if char in NAME_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if not (category.startswith("L") or category == "Nd") or char in INVISIBLE_LETTERS:
            return "A name may hold only letters, digits, '_', '-' and '.'."
    if fold_name(name) in RESERVED_NAMES:
        return f"The name {name!r} is reserved."
    if not confusable_keys(name).isdisjoint(_reserved_keys()):
        return f"The name {name!r} looks like {RESERVED_NAME!r}, which is reserved."
    return None


def is_forbidden_char(char: str) -> bool:
    """C0 controls but TAB and LF, DEL, C1 controls, surrogates, and the bidi override/isolate marks."""
    code = ord(char)
    if code < 0x20:
        return char not in "\t\n"
    # Lone surrogates (from a JSON escape like "\\ud800") are no characters and cannot be UTF-8.
    return 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or char in _BIDI_CONTROLS


# The same set as is_forbidden_char, searched in C: every message is checked, char by char in
# Python it was a tenth of the server's time per message.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_BIDI_CONTROLS)) + "]"
)


def text_problem(text: str, max_text: int) -> tuple[ErrorCode, str] | None:
    """Why `text` may not be sent as a message, as (code, sentence); None when it may."""
    if len(text) > max_text:
        return (
            ErrorCode.TEXT_TOO_LONG,
            f"message too long ({len(text)} > {max_text} characters)",
        )
    forbidden = _FORBIDDEN.search(text)
    if forbidden is not None:
        return (
            ErrorCode.BAD_TEXT,
            f"A message may not hold the control character U+{ord(forbidden.group()):04X}.",
        )
    if not text.strip():
        return ErrorCode.EMPTY_TEXT, "A message needs some text that is not only spaces."
    return None


def strip_unsafe(text: str) -> str:
    """Text with every forbidden character replaced by U+FFFD, for showing peer text on a terminal."""
    return "".join("\ufffd" if is_forbidden_char(c) else c for c in text)


# --------------------------------------------------------------------------------------------
# Framing.


class LineTooLong:
    """Marker yielded by `LineFramer` for a line over the limit (its bytes are discarded)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG = LineTooLong()


class LineFramer:
    """Splits a byte stream into lines of at most `limit` bytes, without the `\\r\\n` or `\\n`.

    A longer line yields `LINE_TOO_LONG` once and the rest of it is dropped as it arrives, so
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
            lines.append(LINE_TOO_LONG if len(line) > self.limit else line)
        del buffer[:start]
        self._scanned = len(buffer)
        # One byte of slack: a line of exactly `limit` bytes may be waiting for "\n" after its "\r".
        if len(buffer) > self.limit + 1 or (
            len(buffer) == self.limit + 1 and not buffer.endswith(b"\r")
        ):
            if not self._discarding:
                lines.append(LINE_TOO_LONG)
                self._discarding = True
            buffer.clear()
            self._scanned = 0
        return lines

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet complete."""
        return len(self._buffer)


# --------------------------------------------------------------------------------------------
# JSON encoding and decoding.


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds: `2026-11-24T09:30:00.123Z`."""
    if ts.tzinfo is not timezone.utc:
        ts = ts.astimezone(timezone.utc)
    # isoformat, not strftime: it is done in C, and it pads years before 1000 to four digits
    # where glibc's %Y writes "999".  Its "+00:00" becomes "Z".
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; raises ValueError for anything else."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not 2 <= parsed.year <= 9998:  # so that any time zone can still show it
        raise ValueError(f"timestamp out of range: {value}")
    return parsed


def _to_wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Event):
        return event_to_dict(value)
    if isinstance(value, list):
        return [_to_wire(item) for item in value]
    return value


_PLAIN_VALUES = (str, int, bool, type(None))


_ENCODING_PLANS: dict[type[Event], tuple[tuple[str, str, bool], ...]] = {}
_DECODING_PLANS: dict[type[Event], tuple[tuple[str, str, Any, bool], ...]] = {}


def _encoding_plan(cls: type[Event]) -> tuple[tuple[str, str, bool], ...]:
    """Per field of `cls`: its name, its wire name, and whether its value needs converting.

    Worked out once per class: every message and ack is encoded with it, and asking
    `dataclasses.fields` and testing each value's type every time was most of the cost.
    """
    plan = _ENCODING_PLANS.get(cls)
    if plan is None:
        plan = _ENCODING_PLANS[cls] = _work_out_encoding(cls)
    return plan


def _work_out_encoding(cls: type[Event]) -> tuple[tuple[str, str, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in fields(cls):
        hint = hints[f.name]
        kinds = (
            typing.get_args(hint)
            if typing.get_origin(hint) in (Union, types.UnionType)
            else (hint,)
        )
        plain = all(
            kind in _PLAIN_VALUES
            or (typing.get_origin(kind) is list and typing.get_args(kind)[0] in _PLAIN_VALUES)
            for kind in kinds
        )  # a list of names is plain; a list of messages is not
        plan.append((f.name, _WIRE_NAMES.get(f.name, f.name), not plain))
    return tuple(plan)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event, `type` first."""
    obj: dict[str, Any] = {"type": event.TYPE}
    for name, wire, convert in _encoding_plan(type(event)):
        value = getattr(event, name)
        obj[wire] = _to_wire(value) if convert else value
    return obj


def encode_json(event: Event) -> bytes:
    """One compact JSON line, non-ASCII kept as UTF-8 (PROTOCOL.md, JSON mode)."""
    if isinstance(event, HelpRequest):
        raise ProtocolUsageError("HelpRequest has no JSON form")
    obj = event_to_dict(event)
    if isinstance(event, Error) and event.id is None:
        del obj["id"]  # `id` only "when the request had one"
    if isinstance(event, Shutdown) and event.reason is None:
        del obj["reason"]  # the specification's own form
    return _ENCODER.encode(obj).encode() + b"\n"


# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _BadField(Exception):
    pass


def _check(value: Any, hint: Any) -> Any:
    """Check one decoded JSON value against a field's type hint; return it converted."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _check(value, inner)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _BadField
        return [_check(item, item_hint) for item in value]
    if hint is datetime:
        if not isinstance(value, str):
            raise _BadField
        try:
            return parse_ts(value)
        except ValueError:
            raise _BadField from None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise _BadField from None
    if isinstance(hint, type) and issubclass(hint, Event):
        if not isinstance(value, dict):
            raise _BadField
        return _build(hint, value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadField
        return value
    if not isinstance(value, hint):
        raise _BadField
    return value


def _decoding_plan(cls: type[Event]) -> tuple[tuple[str, str, Any, bool], ...]:
    """Per field of `cls`: its name, its wire name, its type hint, and whether it must be there."""
    plan = _DECODING_PLANS.get(cls)
    if plan is None:
        plan = _DECODING_PLANS[cls] = _work_out_decoding(cls)
    return plan


def _work_out_decoding(cls: type[Event]) -> tuple[tuple[str, str, Any, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in fields(cls):
        wire = _WIRE_NAMES.get(f.name, f.name)
        has_default = f.default is not f.default_factory  # both MISSING when required
        plan.append((f.name, wire, hints[f.name], not has_default or wire in cls.WIRE_REQUIRED))
    return tuple(plan)


def _build(cls: type[Event], obj: dict[str, Any]) -> Event:
    kwargs: dict[str, Any] = {}
    for name, wire, hint, required in _decoding_plan(cls):
        if wire not in obj:
            if required:
                raise _BadField(wire)
            continue
        value = obj[wire]
        if hint is str and type(value) is str:  # the common case, without the general check
            kwargs[name] = value
        else:
            kwargs[name] = _check(value, hint)
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A line the peer sent that could not be taken: what to answer it with."""

    code: ErrorCode
    message: str
    id: str | None = None

    def as_error(self) -> Error:
        return Error(code=self.code, message=self.message, id=self.id)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load_object(text: str) -> dict[str, Any] | Invalid:
    try:
        obj = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):
            # A surrogate escape without its pair decodes to a string that is not Unicode text;
            # refuse the line here rather than fail later when it is encoded for someone.
            json.dumps(obj, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return Invalid(ErrorCode.BAD_JSON, "That line is not valid JSON.")
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return Invalid(
            ErrorCode.BAD_MESSAGE, 'Each line must be a JSON object with a string "type".'
        )
    return obj


def decode_json(text: str, registry: dict[str, type[Event]] = CLIENT_EVENTS) -> Event | Invalid:
    """Decode one JSON line into an event of `registry` (client events by default)."""
    obj = _load_object(text)
    if isinstance(obj, Invalid):
        return obj
    raw_id = obj.get("id")
    request_id = raw_id if isinstance(raw_id, str) else None
    cls = registry.get(obj["type"])
    if cls is None:
        return Invalid(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {obj['type']!r}.", request_id)
    try:
        return _build(cls, obj)
    except _BadField as exc:
        missing = f" (field {exc.args[0]!r} is missing)" if exc.args else ""
        return Invalid(
            ErrorCode.BAD_MESSAGE,
            f"A {cls.TYPE!r} message has a field missing or of the wrong kind{missing}.",
            request_id,
        )


def decode_server_json(text: str) -> ServerEvent | Invalid:
    """Decode one line the server sent (for clients)."""
    return decode_json(text, SERVER_EVENTS)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Plain mode (nc, telnet): commands in, readable lines out.

PLAIN_HELP = """\
* Commands:
*   /who              who is here
*   /nick NAME        change your name
*   /msg NAME TEXT    send TEXT to NAME only
*   /quit             leave the chat
*   /help             this list
* Any other line is a message to everyone (start it with // to send a line that begins with /)."""


def parse_plain_command(text: str) -> ClientEvent | Invalid:
    """A line typed by a joined plain-mode member: a command, or a message to everyone."""
    if not text.startswith("/") or text.startswith("//"):
        return Say(text=text[1:] if text.startswith("//") else text)
    command, _, rest = text[1:].partition(" ")
    command = command.lower()
    rest = rest.strip()
    if command == "who":
        return Who()
    if command == "quit":
        return Bye()
    if command == "help":
        return HelpRequest()
    if command == "nick":
        if not rest:
            return Invalid(ErrorCode.BAD_MESSAGE, "usage: /nick NAME")
        return Nick(name=rest)
    if command == "msg":
        to, _, message = rest.partition(" ")
        if not to or not message.strip():
            return Invalid(ErrorCode.BAD_MESSAGE, "usage: /msg NAME TEXT")
        return Dm(to=to, text=message)
    return Invalid(ErrorCode.UNKNOWN_TYPE, f"unknown command /{command}; type /help for the list")


# Characters that draw nothing but take a column or two: every whitespace character but the line
# break (TAB, U+3000 and the other Zs spaces, U+2028), the Hangul fillers and the braille blank.
# Control characters that count as whitespace (VT, FF, NEL...) are not text a server sends; from
# a hostile one they are shown as U+FFFD by `strip_unsafe` like every other control.
_BLANK = "\t|[^\\S\\x00-\\x1f\\x7f-\\x9f]|[\u115f\u1160\u2800\u3164\uffa0]"
_IS_BLANK = re.compile(_BLANK)
# Text without zero-width characters (all ASCII text) needs no more than runs of blanks.
_BLANKS = re.compile(f"(?:{_BLANK})+")
# Private-use characters draw what the terminal's font says, often nothing: a run of them could
# pad a line as blanks do.  Plain mode shows each as U+FFFD, which every terminal draws.
_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]")
# Indentation a continuation line keeps (beyond the four spaces that mark it): enough for
# pasted code, and with the four it stays under the narrowest terminal worth serving (20).
_MAX_INDENT = 8


@functools.cache
def _blank_runs() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns for a run of blanks with the zero-width characters among and after them, and
    for the blanks and zero-width characters that open a line.

    Zero-width: the marks (Mn, Me), the format characters (Cf) and the reserved code points
    of Unicode's Default_Ignorable_Code_Point.  A mark on a blank draws little or nothing, and
    zero-width spaces between blanks would otherwise cut a run into runs.  Made on first use
    (a scan of the planes that hold such characters, some milliseconds).
    """
    points = itertools.chain(range(0xA0, 0x20000), range(0xE0000, 0xE1000))
    zero_width = [
        code
        for code in points
        if unicodedata.category(chr(code)) in ("Mn", "Me", "Cf")
        or code == 0x2065
        or 0xFFF0 <= code <= 0xFFF8
        or code >= 0xE0000
    ]
    spans: list[list[int]] = []
    for code in zero_width:
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    zero = "[" + "".join(f"{chr(first)}-{chr(last)}" for first, last in spans) + "]"
    return re.compile(f"(?:{_BLANK})(?:{_BLANK}|{zero})*"), re.compile(f"(?:{_BLANK}|{zero})*")


def _indent_columns(blanks: str) -> int:
    """The columns a terminal gives a run of blanks at the start of a line (a TAB as four)."""
    columns = 0
    for char in blanks:
        if char == "\t":
            columns += 4
        elif _IS_BLANK.match(char):
            columns += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return columns


def _plain_message_text(text: str) -> str:
    """A message's text as plain mode shows it: each run of blanks as one space, each line after
    the first indented by four spaces.

    A terminal wraps a line it cannot hold, and the next row starts at column 0.  Padding a
    message to the width of someone's terminal would start its next words there, looking like a
    line of their own (`* bob left`).  With each run of blanks one space, blanks never fill a
    row, whatever its width.  A line after the first keeps some of its indentation, at most
    `_MAX_INDENT` columns.  Private-use characters show as U+FFFD (see `_PRIVATE_USE`).
    """
    if text.isascii():
        runs = leading_blanks = _BLANKS
    else:
        runs, leading_blanks = _blank_runs()
        text = _PRIVATE_USE.sub("\ufffd", text)
    first, *rest = text.split("\n")
    lines = [runs.sub(" ", first).lstrip(" ")]
    for line in rest:
        leading = leading_blanks.match(line)
        indent = leading.end() if leading else 0
        columns = min(_indent_columns(line[:indent]), _MAX_INDENT)
        lines.append(" " * (4 + columns) + runs.sub(" ", line[indent:]))
    return "\n".join(lines)


def _plain_sender(name: str) -> str:
    """The sender as plain mode shows it: the server as `*** server`, which no member name can
    look like (names hold no `*` and no space)."""
    return f"*** {name}" if name == RESERVED_NAME else name


def render_plain(event: ServerEvent, *, hints: bool = True) -> bytes:
    """The text a person on `nc` sees for an event, as whole lines (empty for none).

    `hints=False` leaves out the "/help" line, for readers that cannot type commands (scripts).
    """
    text = _plain_text(event, hints)
    return (text + "\n").encode() if text else b""


def _plain_text(event: ServerEvent, hints: bool = True) -> str:
    if isinstance(event, Message):
        return (
            f"[{clock(event.ts)}] {_plain_sender(event.sender)}: {_plain_message_text(event.text)}"
        )
    if isinstance(event, Private):
        return (
            f"[{clock(event.ts)}] {_plain_sender(event.sender)} → {event.to} (private): "
            f"{_plain_message_text(event.text)}"
        )
    if isinstance(event, Joined):
        return f"* {event.name} joined ({plural_members(event.members)})"
    if isinstance(event, Left):
        return f"* {event.name} {LEAVE_WORDS[event.reason]} ({plural_members(event.members)})"
    if isinstance(event, Renamed):
        return f"* {event.old} is now known as {event.new}"
    if isinstance(event, Members):
        return f"* {plural_members(event.members)}: {', '.join(event.names)}"
    if isinstance(event, Error):
        return f"! {event.message}"
    if isinstance(event, Shutdown):
        return f"* {event.message}"
    if isinstance(event, Welcome):
        lines = [
            f"* Welcome to {event.server}, {event.name}! "
            f"{plural_members(event.members)}: {', '.join(event.names)}."
        ]
        if event.motd:
            lines.append(f"* {event.motd}")
        if event.history:
            lines.append("* --- earlier messages ---")
            lines.extend(_plain_text(message) for message in event.history)
            lines.append("* --- now ---")
        if hints:
            lines.append("* Type /help for commands, /quit to leave.")
        return "\n".join(lines)
    return ""  # Ack and Pong: the person already sees what they typed


def banner(server_name: str, members: int) -> bytes:
    """The first line the server sends: for people, never starting with `{`."""
    return f"Welcome to tcpchat on {server_name}! {plural_members(members)}. Enter your name:\n".encode()


# --------------------------------------------------------------------------------------------
# The server's side of one connection.


class ServerConnection:
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


class ClientConnection:
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
