"""The protocol's vocabulary: one frozen class per wire `type`, the error codes, the reasons a
member leaves and the modes a connection talks in (PROTOCOL.md, JSON mode and Errors).

Data only.  How an event becomes bytes is `jsonlines` and `plain`; how a peer's bytes become
events is `codec`.  `Invalid` stands for a line that could not be taken, with the error to
answer it with.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime  # at run time: the JSON plans read the fields' type hints
from typing import ClassVar

from tcpchat.defaults import PROTOCOL_VERSION
from tcpchat.protocol.quick import quick_init


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
    UNAVAILABLE = "unavailable"
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
    REPLACED = "replaced"


class Mode(enum.Enum):
    """How a connection talks: chosen by its first line (PROTOCOL.md, Connection start)."""

    UNDECIDED = "undecided"
    JSON = "json"
    PLAIN = "plain"
    # JSON objects, one per WebSocket text frame (PROTOCOL.md, WebSocket): a browser.
    WEB = "web"


# --------------------------------------------------------------------------------------------
# Events.  One frozen class per wire `type`; `TYPE` is that wire string.


@dataclass(frozen=True, slots=True)
class Event:
    TYPE: ClassVar[str] = ""
    # Fields with a default for our own code that a peer must still send.
    WIRE_REQUIRED: ClassVar[frozenset[str]] = frozenset()
    # Fields left out of the JSON while they hold their default (`me` but for an action).
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset()


# Client to server.


@dataclass(frozen=True, slots=True)
class Hello(Event):
    TYPE: ClassVar[str] = "hello"
    WIRE_REQUIRED: ClassVar[frozenset[str]] = frozenset({"version"})
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset({"since", "token"})
    name: str
    version: int = PROTOCOL_VERSION
    password: str | None = None
    since: int | None = None  # resume: the messages after this `seq` come with the welcome
    token: str | None = None  # an earlier welcome's: take this name over from its connection


@quick_init
@dataclass(frozen=True, slots=True)
class Say(Event):
    TYPE: ClassVar[str] = "say"
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset({"me"})
    text: str
    id: str | None = None
    me: bool = False  # an action: `* alice waves`


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
class HistoryRequest(Event):
    """`history`: a page of earlier messages, those before `before` (after the newest if None)."""

    TYPE: ClassVar[str] = "history"
    before: int | None = None
    limit: int | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest(Event):
    """`search`: the messages holding every word of `text`."""

    TYPE: ClassVar[str] = "search"
    text: str
    limit: int | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Bye(Event):
    TYPE: ClassVar[str] = "bye"


@dataclass(frozen=True, slots=True)
class HelpRequest(Event):
    """`/help` typed by a plain-mode member; it has no JSON form."""

    TYPE: ClassVar[str] = "help"


# Server to client.


@quick_init
@dataclass(frozen=True, slots=True)
class Message(Event):
    TYPE: ClassVar[str] = "message"
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset({"me"})
    seq: int
    sender: str  # wire field `from`, a Python keyword
    text: str
    ts: datetime
    me: bool = False  # an action; on the wire only when true


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
    seq: int = 0  # the newest `seq` when this was sent
    token: str = ""  # the secret that takes this name back from this connection
    gap: bool = False  # some messages after the `hello`'s `since` are not in `history`


@dataclass(frozen=True, slots=True)
class Private(Event):
    TYPE: ClassVar[str] = "private"
    sender: str
    to: str
    text: str
    ts: datetime


@quick_init
@dataclass(frozen=True, slots=True)
class Joined(Event):
    TYPE: ClassVar[str] = "joined"
    name: str
    members: int
    ts: datetime


@quick_init
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


@quick_init
@dataclass(frozen=True, slots=True)
class Ack(Event):
    TYPE: ClassVar[str] = "ack"
    id: str | None
    seq: int | None
    ts: datetime
    delivered: int


@dataclass(frozen=True, slots=True)
class HistoryPage(Event):
    """The answer to `history` (its wire `type` is `history` too): oldest first."""

    TYPE: ClassVar[str] = "history"
    messages: list[Message]
    more: bool
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Results(Event):
    """The answer to `search`: newest first."""

    TYPE: ClassVar[str] = "results"
    messages: list[Message]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong(Event):
    TYPE: ClassVar[str] = "pong"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Error(Event):
    TYPE: ClassVar[str] = "error"
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset({"id"})  # "when the request had one"
    code: ErrorCode
    message: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Shutdown(Event):
    TYPE: ClassVar[str] = "shutdown"
    WIRE_OMITTED: ClassVar[frozenset[str]] = frozenset({"reason"})
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


ClientEvent = (
    Hello | Say | Dm | Nick | Who | HistoryRequest | SearchRequest | Ping | Bye | HelpRequest
)
ServerEvent = (
    Welcome
    | Message
    | Private
    | Joined
    | Left
    | Renamed
    | Members
    | Ack
    | HistoryPage
    | Results
    | Pong
    | Error
    | Shutdown
)

CLIENT_EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (Hello, Say, Dm, Nick, Who, HistoryRequest, SearchRequest, Ping, Bye)
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
        HistoryPage,
        Results,
        Pong,
        Error,
        Shutdown,
    )
}


@dataclass(frozen=True, slots=True)
class Invalid:
    """A line the peer sent that could not be taken: what to answer it with."""

    code: ErrorCode
    message: str
    id: str | None = None

    def as_error(self) -> Error:
        return Error(code=self.code, message=self.message, id=self.id)
