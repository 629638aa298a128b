"""How the chat screen shows events: pure functions from events to styled text fragments.

Fragments are `(style class, text)` pairs, prompt_toolkit's formatted text, so nothing from the
network is ever written to the terminal raw: every peer string passes `strip_unsafe` first, which
removes control characters, escape sequences and bidi marks.  No I/O here; tests call it directly.
`STYLE` says how each style class looks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth

from tcpchat.client.ui.layout import CONTINUED, HUES, indent
from tcpchat.protocol import (
    RESERVED_NAMES,
    Error,
    Joined,
    Left,
    Members,
    Message,
    Private,
    Renamed,
    Shutdown,
    Welcome,
    fold_name,
    strip_unsafe,
)
from tcpchat.words import CLOCK, LEAVE_WORDS, clock, members_online

Fragments = list[tuple[str, str]]

NAME_COLOURS = 8
# A name ends where no name character follows; a full stop ends it only before a non-word
# ("alice." is a mention, "alice.txt" is not).
_NAME_END = r"(?![\w-]|\.\w)"
TAB = "    "
# Before the operator's name (`server`, which no member may take): a character no name may hold,
# so that together with its style no member's name, however alike, looks the same.
OPERATOR_MARK = "⚑"


def name_style(name: str) -> str:
    """Colour classes that are the same for a name in every session (a hash, not the order seen):
    one of 8 for any terminal, and a hue that the screen's style colours where it has the colours
    (`layout.name_colours`)."""
    number = zlib.crc32(fold_name(name).encode())
    return f"class:name.c{number % NAME_COLOURS} class:name.h{number % HUES}"


def mentions(text: str, me: str) -> bool:
    """True when `text` names `me` as a word (case and width folded)."""
    pattern = rf"(?<![\w.-]){re.escape(fold_name(me))}{_NAME_END}"
    return re.search(pattern, fold_name(text)) is not None


def _speaker(name: str, me: str) -> tuple[str, str]:
    if fold_name(name) in RESERVED_NAMES:  # only the server itself speaks as `server`
        return ("class:operator", f"{OPERATOR_MARK} {strip_unsafe(name)}")
    style = name_style(name) + (" class:me" if fold_name(name) == fold_name(me) else "")
    return (style, strip_unsafe(name))


def _shown(text: str) -> str:
    """Peer text as the screen shows it: nothing a terminal would act on, tabs as spaces."""
    return strip_unsafe(text).replace("\t", TAB)


def _body(text: str, me: str, extra_style: str = "") -> Fragments:
    """The text, with each mention of `me` highlighted (the whole text if only folding finds it)."""
    safe = _shown(text)
    style = "class:text" + extra_style
    if not mentions(text, me):
        return [(style, safe)]
    pattern = re.compile(rf"(?<![\w.-]){re.escape(me)}{_NAME_END}", re.IGNORECASE)
    pieces = pattern.split(safe)
    if len(pieces) == 1:  # found only after width or compatibility folding (ａｌｉｃｅ)
        return [(style + " class:mention", safe)]
    found = pattern.findall(safe)
    fragments: Fragments = [(style, pieces[0])]
    for name, after in zip(found, pieces[1:], strict=True):
        fragments += [(style + " class:mention", name), (style, after)]
    return [fragment for fragment in fragments if fragment[1]]


def render_message(
    message: Message,
    me: str,
    *,
    earlier: bool = False,
    asked: bool = False,
    time_format: str = CLOCK,
) -> Fragments:
    """`12:30 alice: text`, an action as `12:30 * alice waves`; history (`earlier`) is dimmed,
    and messages asked for (`asked`: /history, /search) have their own look and their date."""
    extra = " class:earlier" if earlier else " class:asked" if asked else ""
    when = _dated(message.ts, time_format) if asked else clock(message.ts, time_format)
    if message.me:
        return [
            ("class:time" + extra, when + " "),
            ("class:action" + extra, "* "),
            _speaker(message.sender, me),
            ("class:action" + extra, " "),
            *_body(message.text, me, extra + " class:action"),
        ]
    return [
        ("class:time" + extra, when + " "),
        _speaker(message.sender, me),
        ("class:punct" + extra, ": "),
        *_body(message.text, me, extra),
    ]


def _dated(ts: datetime, time_format: str) -> str:
    """`2026-11-24 09:30`: a message asked for may be from any day."""
    return ts.astimezone().strftime(f"%Y-%m-%d {time_format}")


def render_asked(
    title: str,
    messages: list[Message],
    me: str,
    *,
    end: str | None = None,
    time_format: str = CLOCK,
) -> list[Fragments]:
    """Messages asked for (/history, /search), set apart from the live ones: a title line, the
    messages in their own look with their date, and an `end` line (none when nothing came)."""
    lines: list[Fragments] = [[("class:asked-title", f"── {strip_unsafe(title)} ──")]]
    lines += [
        render_message(message, me, asked=True, time_format=time_format) for message in messages
    ]
    if end is not None:
        lines.append([("class:asked-title", f"── {end} ──")])
    return lines


def render_own(
    text: str,
    ts: datetime,
    me: str,
    *,
    to: str | None,
    delivered: int,
    action: bool = False,
    time_format: str = CLOCK,
) -> Fragments:
    """One's own message once the server confirmed it: `✓ delivered to 3`."""
    target = (
        [("class:punct", " → "), _speaker(to, me), ("class:private", " (private)")] if to else []
    )
    if action:
        said: Fragments = [
            ("class:action", "* "),
            _speaker(me, me),
            ("class:action", " "),
            ("class:text class:action", _shown(text)),
        ]
    else:
        said = [_speaker(me, me), *target, ("class:punct", ": "), ("class:text", _shown(text))]
    return [
        ("class:time", clock(ts, time_format) + " "),
        *said,
        ("class:confirmed", f"  ✓ delivered to {delivered}"),
    ]


def render_pending(text: str, *, to: str | None, state: str) -> Fragments:
    """A message waiting for its ack, shown just above the input line."""
    first_line = strip_unsafe(text).split("\n", 1)[0]
    more = " …" if "\n" in text or len(first_line) > 60 else ""
    target = f" → {strip_unsafe(to)}" if to else ""
    return [("class:pending", f"  ⋯{target} {first_line[:60]}{more}  ({state})\n")]


def render_event(event: object, me: str, time_format: str = CLOCK) -> Fragments | None:
    """The screen line for a server event, or None for events shown another way."""
    if isinstance(event, Message):
        return render_message(event, me, time_format=time_format)
    if isinstance(event, Private):
        return [
            ("class:time", clock(event.ts, time_format) + " "),
            _speaker(event.sender, me),
            ("class:private", " (private)"),
            ("class:punct", ": "),
            *_body(event.text, me, " class:private-text"),
        ]
    if isinstance(event, Joined):
        joined = f"→ {strip_unsafe(event.name)} joined · {members_online(event.members)}"
        return _notice(event.ts, joined, time_format)
    if isinstance(event, Left):
        words = LEAVE_WORDS[event.reason]
        left = f"← {strip_unsafe(event.name)} {words} · {members_online(event.members)}"
        return _notice(event.ts, left, time_format)
    if isinstance(event, Renamed):
        renamed = f"* {strip_unsafe(event.old)} is now {strip_unsafe(event.new)}"
        return _notice(event.ts, renamed, time_format)
    if isinstance(event, Members):
        names = ", ".join(strip_unsafe(name) for name in event.names)
        return [("class:notice", f"* {members_online(event.members)}: {names}")]
    if isinstance(event, Error):
        return render_problem(event.message)
    if isinstance(event, Shutdown):
        return [("class:problem", f"* {strip_unsafe(event.message)}")]
    return None


def render_welcome(
    welcome: Welcome,
    *,
    history: list[Message] | None = None,
    title: str = "earlier messages",
    time_format: str = CLOCK,
) -> list[Fragments]:
    """The lines shown on joining: who is here, the message of the day, earlier messages
    (`history`, by default the welcome's, under a marker line saying `title`)."""
    me = welcome.name
    names = ", ".join(strip_unsafe(name) for name in welcome.names)
    lines: list[Fragments] = [
        [
            ("class:notice", f"* Welcome to {strip_unsafe(welcome.server)}, "),
            ("class:me", strip_unsafe(me)),
            ("class:notice", f"! {members_online(welcome.members)}: {names}."),
        ]
    ]
    if welcome.motd:
        lines.append([("class:motd", f"* {strip_unsafe(welcome.motd)}")])
    shown = welcome.history if history is None else history
    if shown:
        lines.append([("class:earlier", f"── {title} ──")])
        lines.extend(
            render_message(message, me, earlier=True, time_format=time_format) for message in shown
        )
        lines.append([("class:earlier", "── now ──")])
    return lines


def render_problem(text: str) -> Fragments:
    return [("class:problem", f"! {strip_unsafe(text)}")]


def render_notice(text: str) -> Fragments:
    return [("class:notice", f"* {strip_unsafe(text)}")]


def _notice(ts: datetime, text: str, time_format: str) -> Fragments:
    return [("class:time", clock(ts, time_format) + " "), ("class:notice", text)]


def screen_rows(fragments: Fragments, width: int) -> list[Fragments]:
    """The rows one line takes on a terminal `width` columns wide, each row after the first
    indented under the line's text (`layout.indent`) and marked with CONTINUED, be it a line
    break in the text or a row that is full.

    Left to the terminal, a full row would go on at column 0, with whatever the text put there:
    a message padded to the width would show a line of its own, looking like the screen's.
    A full row breaks before the word that does not fit (a word longer than a row breaks where
    the row ends), and the space where it breaks is not shown.  Widths are measured as
    prompt_toolkit measures its own layout (wcwidth).
    """
    cells = [(style, char) for style, text in fragments for char in text.replace("\t", TAB)]
    margin = indent(fragments, width)
    continued = " " * (margin - len(CONTINUED)) + CONTINUED
    rows: list[list[tuple[str, str]]] = [[]]  # each row's characters, with their styles
    column = 0

    def next_row() -> None:
        nonlocal column
        if rows[-1] and rows[-1][-1][1] == " ":
            rows[-1].pop()  # the space the row broke at
        rows.append([])
        column = margin

    for word in _words(cells):
        if word[0][1] == "\n":
            next_row()
            continue
        if rows[-1] and column + _width(word) > width:
            if word[0][1] == " ":
                next_row()  # the row breaks at this space
                continue
            if margin + _width(word) <= width:
                next_row()  # the word fits on a row of its own: it starts one
        for cell in word:
            char_width = get_cwidth(cell[1])
            if column + char_width > width and rows[-1]:
                next_row()
            rows[-1].append(cell)
            column += char_width
    return [
        _merged(row if n == 0 else [("class:continued", continued), *row])
        for n, row in enumerate(rows)
    ]


def _words(cells: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    """The characters in runs that break together: a word, or one space, or one line break."""
    word: list[tuple[str, str]] = []
    for cell in cells:
        if cell[1] in " \n":
            if word:
                yield word
                word = []
            yield [cell]
        else:
            word.append(cell)
    if word:
        yield word


def _width(cells: list[tuple[str, str]]) -> int:
    return sum(get_cwidth(char) for _, char in cells)


def _merged(cells: list[tuple[str, str]]) -> Fragments:
    """Characters with their styles as fragments: one per run of the same style."""
    fragments: Fragments = []
    for style, text in cells:
        if fragments and fragments[-1][0] == style:
            fragments[-1] = (style, fragments[-1][1] + text)
        else:
            fragments.append((style, text))
    return fragments


@dataclass(frozen=True)
class Bar:
    """What the bottom bar tells: the connection's state, then where, who and how many."""

    status: str  # online, offline, connecting…
    server: str
    name: str
    members: int
    address: str
    detail: str = ""  # what happens next: `retrying in 3 s`
    problem: str = ""  # why the last try failed

    @property
    def online(self) -> bool:
        return self.status == "online"


def render_toolbar(bar: Bar, width: int) -> Fragments:
    """The bottom bar, as much of it as `width` columns hold; your name and the member count
    always stay.

    What goes first: `/help`, the address, the server's name; then why the connection is down,
    then what happens next, then `last known:`; then the `you:` before your name; last, the
    end of a name too long for the rest, cut with `…`.
    """
    fragments: Fragments = []
    for status, count in _status_and_count(bar):
        for kept in range(3, -1, -1):
            fragments = _toolbar(bar, status, count, kept, f"you: {strip_unsafe(bar.name)}")
            if get_cwidth(fragments_text(fragments)) <= width:
                return fragments
    name = strip_unsafe(bar.name)
    fragments = _toolbar(bar, status, count, 0, name)
    room = width - get_cwidth(fragments_text(fragments)) + get_cwidth(name)
    while name and get_cwidth(name) + 1 > room:
        name = name[:-1]
    if name != strip_unsafe(bar.name):  # cut, and gone when not a letter of it fits
        fragments = _toolbar(bar, status, count, 0, name and name + "…")
    return fragments  # a window narrower than the count and the state cuts its end


def _status_and_count(bar: Bar) -> Iterator[tuple[str, str]]:
    """The state and the count, the longest way first."""
    count = members_online(bar.members)
    if bar.online:
        yield bar.status, count
        return
    problem = f" ({strip_unsafe(bar.problem)})" if bar.problem else ""
    detail = f" · {bar.detail}" if bar.detail else ""
    last_known = f"last known: {count}"
    yield f"{bar.status}{problem}{detail}", last_known
    yield f"{bar.status}{detail}", last_known
    yield bar.status, last_known
    yield bar.status, count


def _toolbar(bar: Bar, status: str, count: str, kept: int, name: str) -> Fragments:
    """The bar with your `name`, the count and the first `kept` of: the server, the address,
    `/help`."""
    extras = [strip_unsafe(bar.server), bar.address, "/help"][:kept]
    before = " · ".join(part for part in [*extras[:1], name] if part)
    after = "".join(f" · {extra}" for extra in extras[1:])
    return [
        ("class:toolbar.online" if bar.online else "class:toolbar.offline",
         f" {'●' if bar.online else '○'} {status} "),
        ("", f" {before} · " if before else " "),
        ("class:toolbar.count", count),
        ("", after),
    ]  # fmt: skip


def fragments_text(fragments: Fragments) -> str:
    """The plain text of fragments (for transcripts and tests)."""
    return "".join(text for _, text in fragments)


# How each style class looks: the chat screen's and the join questions' colours.
STYLE = Style.from_dict(
    {
        "time": "#888888",
        "earlier": "#888888 italic",
        "action": "italic",
        "asked": "#87afaf",
        "asked-title": "#87afaf bold reverse",
        "punct": "",
        "text": "",
        "mention": "bold reverse",
        "me": "bold underline",
        "private": "#d787ff",
        "private-text": "#d787ff",
        "notice": "#5f87af",
        "motd": "#5f87af bold",
        "problem": "#ff5f5f",
        "confirmed": "#5faf5f",
        "pending": "#888888 italic",
        "continued": "#888888",
        "day": "#87afaf bold",
        "marker": "#ff8700 bold",
        "prompt": "bold",
        "operator": "bg:#d7af00 #000000 bold",
        "name.c0": "#e06c75",
        "name.c1": "#98c379",
        "name.c2": "#e5c07b",
        "name.c3": "#61afef",
        "name.c4": "#c678dd",
        "name.c5": "#56b6c2",
        "name.c6": "#d19a66",
        "name.c7": "#be5046",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "toolbar.online": "bg:#303030 #87d787 bold",
        "toolbar.offline": "bg:#303030 #ff5f5f bold",
        "toolbar.count": "bg:#303030 #ffffff bold",
    }
)
