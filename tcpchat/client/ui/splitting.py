"""Messages longer than the server takes: split where a person would split them, and the count of
characters shown beside the input line as the limit nears.

The server refuses a message over `max_text` characters (its welcome says how many), so a long
one is sent as several, each broken at a line break or a space, never inside a word unless the
word alone is longer than a message.  irssi and weechat split long lines the same way, without
asking; a split into more than ASK_ABOVE messages is asked about first (the screen keeps the
line in the input until Enter is pressed again), as it is more likely a paste gone wrong.
Pure functions: the screen decides when, and shows what.
"""

from __future__ import annotations

from tcpchat.client.ui.render import Fragments
from tcpchat.words import counted

ASK_ABOVE = 3  # a split into more messages than this is asked about first
NEAR = 0.9  # the count shows from this share of the limit on


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, each broken at the last line break or else
    the last space that fits (a line break only in the second half: a short first line is not a
    message of its own); a piece that is only blanks is dropped."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]  # a break just after the limit still leaves a full piece
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            pieces.append(rest[:limit])  # one word longer than a message: cut it
            rest = rest[limit:]
            continue
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut + 1 :]
        if window[cut] == " ":
            rest = rest.lstrip(" ")
    pieces.append(rest)
    return [piece for piece in pieces if piece.strip()]


def split_note(pieces: int, limit: int) -> str:
    """What the screen says when it sends one message as several."""
    return f"Sent as {counted(pieces, 'message')}: the server takes {limit} characters at most."


def split_question(pieces: int, limit: int) -> str:
    """What the screen says before a split into many messages."""
    return (
        f"That is {counted(pieces, 'message')} of {limit} characters at most: Enter again sends "
        "them all; edit the line, or Ctrl-C drops it."
    )


def count_hint(text: str, limit: int) -> Fragments:
    """`931/1024` beside the input line once a message nears the limit (nothing before); past
    it, how many messages it will be sent as."""
    if len(text) < limit * NEAR:
        return []
    if len(text) <= limit:
        return [("class:pending", f"{len(text)}/{limit}")]
    pieces = counted(len(split_text(text, limit)), "message")
    return [("class:problem", f"{len(text)}/{limit} → {pieces}")]
