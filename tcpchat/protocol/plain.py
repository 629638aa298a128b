"""Plain mode (PROTOCOL.md, Plain mode): the lines a person on `nc` or telnet types, read as
commands, and the events they receive, written as lines to read that no peer's text can forge.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

from tcpchat.protocol.events import (
    Bye,
    ClientEvent,
    Dm,
    Error,
    ErrorCode,
    HelpRequest,
    HistoryPage,
    Invalid,
    Joined,
    Left,
    Members,
    Message,
    Nick,
    Private,
    Renamed,
    Results,
    Say,
    ServerEvent,
    Shutdown,
    Welcome,
    Who,
)
from tcpchat.protocol.rules import RESERVED_NAME
from tcpchat.words import LEAVE_WORDS, clock, members_online

PLAIN_HELP = """\
* Commands:
*   /who              who is here
*   /nick NAME        change your name
*   /msg NAME TEXT    send TEXT to NAME only
*   /me TEXT          an action: * yourname TEXT
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
    if command == "me":
        if not rest:
            return Invalid(ErrorCode.BAD_MESSAGE, "usage: /me TEXT")
        return Say(text=rest, me=True)
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
        if event.me:  # the time first, as for any message: no line of the server's starts so
            return (
                f"[{clock(event.ts)}] * {_plain_sender(event.sender)} "
                f"{_plain_message_text(event.text)}"
            )
        return (
            f"[{clock(event.ts)}] {_plain_sender(event.sender)}: {_plain_message_text(event.text)}"
        )
    if isinstance(event, Private):
        return (
            f"[{clock(event.ts)}] {_plain_sender(event.sender)} → {event.to} (private): "
            f"{_plain_message_text(event.text)}"
        )
    if isinstance(event, Joined):
        return f"* {event.name} joined ({members_online(event.members)})"
    if isinstance(event, Left):
        return f"* {event.name} {LEAVE_WORDS[event.reason]} ({members_online(event.members)})"
    if isinstance(event, Renamed):
        return f"* {event.old} is now known as {event.new}"
    if isinstance(event, Members):
        return f"* {members_online(event.members)}: {', '.join(event.names)}"
    if isinstance(event, Error):
        return f"! {event.message}"
    if isinstance(event, Shutdown):
        return f"* {event.message}"
    if isinstance(event, Welcome):
        lines = [
            f"* Welcome to {event.server}, {event.name}! "
            f"{members_online(event.members)}: {', '.join(event.names)}."
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
    if isinstance(event, HistoryPage):
        return _plain_list("earlier messages", event.messages, "no earlier messages")
    if isinstance(event, Results):
        return _plain_list("search results, newest first", event.messages, "nothing found")
    return ""  # Ack and Pong: the person already sees what they typed


def _plain_list(title: str, messages: list[Message], empty: str) -> str:
    """Messages asked for (not live ones), set apart between two marker lines."""
    if not messages:
        return f"* --- {empty} ---"
    lines = [f"* --- {title} ---", *(_plain_text(message) for message in messages)]
    lines.append("* --- end ---")
    return "\n".join(lines)


def banner(server_name: str, members: int) -> bytes:
    """The first line the server sends: for people, never starting with `{`."""
    return f"Welcome to tcpchat on {server_name}! {members_online(members)}. Enter your name:\n".encode()
