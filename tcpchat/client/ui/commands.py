"""The lines a person types on the chat screen: a slash command, a message, or a problem.

The grammar is plain mode's (`tcpchat.protocol.parse_plain_command`): the same commands, typed
the same way, so a line means the same on the screen as in `nc`.  What differs is said here:
the screen's help comes from `COMMANDS` (which completion offers too), and an unknown command
points to that help.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpchat.client.ui.local_commands import LOCAL_COMMANDS, Local, parse_local
from tcpchat.protocol import (
    Bye,
    Dm,
    ErrorCode,
    HelpRequest,
    HistoryRequest,
    Invalid,
    Nick,
    Say,
    SearchRequest,
    Who,
    parse_plain_command,
)

HISTORY_PAGE = 20  # messages /history shows when not told how many
HISTORY_MOST = 500  # the most one `history` request gets (PROTOCOL.md)

COMMANDS = {  # command: (how to type it, what it does)
    "/help": ("/help", "show the commands"),
    "/who": ("/who", "list who is here"),
    "/nick": ("/nick NAME", "change your name"),
    "/msg": ("/msg NAME TEXT", "a private message"),
    "/me": ("/me TEXT", "an action: * yourname TEXT"),
    "/history": ("/history [N]", f"N earlier messages ({HISTORY_PAGE}), paging back"),
    "/search": ("/search WORDS", "the messages holding every word, with their time"),
    **LOCAL_COMMANDS,
    "/set": ("/set [NAME [VALUE]]", "the settings; change one for this session"),
    "/quit": ("/quit [MESSAGE]", "leave (MESSAGE: said to the room first); Ctrl-D too"),
}
ESCAPE_HINT = "A line starting with // sends a message that starts with /."


@dataclass(frozen=True, slots=True)
class Problem:
    """A command typed wrong: the sentence that says how to type it."""

    sentence: str


@dataclass(frozen=True, slots=True)
class SetRequest:
    """`/set`: list the settings; `/set NAME`: show one; `/set NAME VALUE`: change it."""

    key: str = ""
    value: str = ""


Typed = (
    Say
    | Dm
    | Who
    | Nick
    | Bye
    | HelpRequest
    | HistoryRequest
    | SearchRequest
    | SetRequest
    | Local
    | Problem
)


def parse_typed(typed: str) -> Typed | None:
    """What an entered line asks for; None for a blank line.

    Line breaks typed or pasted become `\\n`, and trailing blanks go: they would only be
    refused or trimmed by the server.
    """
    text = typed.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if not text.strip():
        return None
    command, _, rest = text.partition(" ")
    if command.lower() in ("/history", "/search"):
        return _asking(command.lower(), rest.strip())
    if command.lower() == "/set":
        key, _, value = rest.strip().partition(" ")
        return SetRequest(key, value.strip())
    local = parse_local(command.lower(), rest.strip())
    if local is not None:
        return Problem(local) if isinstance(local, str) else local
    parsed = parse_plain_command(text)
    if isinstance(parsed, Invalid):
        if parsed.code is ErrorCode.UNKNOWN_TYPE:
            command = text.partition(" ")[0].lower()
            return Problem(f"unknown command {command}; /help lists them.")
        return Problem(parsed.message)
    if isinstance(parsed, (Say, Dm, Who, Nick, Bye, HelpRequest)):
        return parsed
    raise AssertionError(f"plain mode parsed a typed line as {parsed!r}")


def _asking(command: str, rest: str) -> HistoryRequest | SearchRequest | Problem:
    """`/history [N]` and `/search WORDS`, the screen's own commands (plain mode has none)."""
    if command == "/search":
        return SearchRequest(text=rest) if rest else Problem("usage: /search WORDS")
    if not rest:
        return HistoryRequest(limit=HISTORY_PAGE)
    if rest.isascii() and rest.isdigit() and 1 <= int(rest) <= HISTORY_MOST:
        return HistoryRequest(limit=int(rest))
    return Problem(f"usage: /history [N], N from 1 to {HISTORY_MOST}.")


def help_lines() -> list[str]:
    """`/help`: each command as it is typed, and what it does."""
    lines = [f"{usage:<15} {meta}" for usage, meta in COMMANDS.values()]
    return [*lines, ESCAPE_HINT]
