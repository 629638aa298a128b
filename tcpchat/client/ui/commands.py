"""The lines a person types on the chat screen: a slash command, a message, or a problem.

The grammar is plain mode's (`tcpchat.protocol.parse_plain_command`): the same commands, typed
the same way, so a line means the same on the screen as in `nc`.  What differs is said here:
the screen's help comes from `COMMANDS` (which completion offers too), and an unknown command
points to that help.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpchat.protocol import (
    Bye,
    Dm,
    ErrorCode,
    HelpRequest,
    Invalid,
    Nick,
    Say,
    Who,
    parse_plain_command,
)

COMMANDS = {  # command: (how to type it, what it does)
    "/help": ("/help", "show the commands"),
    "/who": ("/who", "list who is here"),
    "/nick": ("/nick NAME", "change your name"),
    "/msg": ("/msg NAME TEXT", "a private message"),
    "/quit": ("/quit", "leave the chat (also Ctrl-D, or Ctrl-C on an empty line)"),
}
ESCAPE_HINT = "A line starting with // sends a message that starts with /."


@dataclass(frozen=True, slots=True)
class Problem:
    """A command typed wrong: the sentence that says how to type it."""

    sentence: str


Typed = Say | Dm | Who | Nick | Bye | HelpRequest | Problem


def parse_typed(typed: str) -> Typed | None:
    """What an entered line asks for; None for a blank line.

    Line breaks typed or pasted become `\\n`, and trailing blanks go: they would only be
    refused or trimmed by the server.
    """
    text = typed.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if not text.strip():
        return None
    parsed = parse_plain_command(text)
    if isinstance(parsed, Invalid):
        if parsed.code is ErrorCode.UNKNOWN_TYPE:
            command = text.partition(" ")[0].lower()
            return Problem(f"unknown command {command}; /help lists them.")
        return Problem(parsed.message)
    if isinstance(parsed, (Say, Dm, Who, Nick, Bye, HelpRequest)):
        return parsed
    raise AssertionError(f"plain mode parsed a typed line as {parsed!r}")


def help_lines() -> list[str]:
    """`/help`: each command as it is typed, and what it does."""
    lines = [f"{usage:<15} {meta}" for usage, meta in COMMANDS.values()]
    return [*lines, ESCAPE_HINT]
