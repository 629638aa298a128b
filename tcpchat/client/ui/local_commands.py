"""The chat screen's commands that the protocol has no word for: read here, done by `personal`.

`/quit MESSAGE`, `/away [TEXT]`, `/back`, `/ignore [NAME]`, `/unignore NAME`, `/r TEXT` and
`/clear` are the commands irssi and weechat users type without thinking.  The protocol (and so
plain mode and `nc`) has none of them but `/quit`, which takes no message: each is made of what
the protocol has (a last `say`, private messages) or happens on this screen only.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_COMMANDS = {  # command: (how to type it, what it does), as commands.COMMANDS
    "/r": ("/r TEXT", "reply privately to whoever wrote to you privately last"),
    "/away": ("/away [TEXT]", "away: a summary when you are /back; TEXT answers private messages"),
    "/back": ("/back", "back: what mentioned you or came privately meanwhile"),
    "/ignore": ("/ignore [NAME]", "hide NAME's messages (alone: list who is ignored)"),
    "/unignore": ("/unignore NAME", "show NAME's messages again"),
    "/clear": ("/clear", "clear the screen (PageUp still scrolls back)"),
}


@dataclass(frozen=True, slots=True)
class Quit:
    """`/quit MESSAGE`: the message goes to the room as a last `say`, then `bye`."""

    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


@dataclass(frozen=True, slots=True)
class Away:
    text: str


@dataclass(frozen=True, slots=True)
class Back:
    pass


@dataclass(frozen=True, slots=True)
class Ignore:
    name: str  # empty: list the ignored names


@dataclass(frozen=True, slots=True)
class Unignore:
    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    pass


Local = Quit | Reply | Away | Back | Ignore | Unignore | Clear


def parse_local(command: str, rest: str) -> Local | str | None:
    """The local command `command` (lower case) with its argument `rest` (stripped); a usage
    sentence when typed wrong; None when `command` is not one of them (nor `/quit MESSAGE`)."""
    if command == "/quit":
        return Quit(rest) if rest else None  # a bare /quit is the protocol's `bye`
    if command == "/r":
        return Reply(rest) if rest else "usage: /r TEXT"
    if command == "/away":
        return Away(rest)
    if command in ("/back", "/clear"):
        return (Back() if command == "/back" else Clear()) if not rest else f"usage: {command}"
    if command == "/ignore":
        return Ignore(rest) if " " not in rest else "usage: /ignore [NAME]"
    if command == "/unignore":
        return Unignore(rest) if rest and " " not in rest else "usage: /unignore NAME"
    return None
