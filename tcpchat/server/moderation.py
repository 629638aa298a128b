"""The operator's commands, typed into the console where `tcpchat serve` runs.

`/kick NAME [reason]`, `/ban NAME|ADDRESS [minutes]`, `/unban ADDRESS`, `/bans`, `/who`,
`/say TEXT` and `/help`.  Each line gets one answer for the operator; the server does the work.
At a terminal a line may first need a yes (`question`: a /ban that removes more than the member
named); the operator's page previews every line instead (`preview`).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcpchat.protocol import strip_unsafe, text_problem
from tcpchat.server.guard import address_key
from tcpchat.words import counted, members_online

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

MAX_REASON = 300  # characters in a /kick reason
MAX_BAN_MINUTES = 10 * 365 * 24 * 60  # ten years: longer is "until restart"

log = logging.getLogger("tcpchat.server")

HELP = """\
Commands for the server's operator:
  /who                       who is here, with their addresses
  /say TEXT                  a message to everyone, from "server"
  /kick NAME [REASON]        remove a member (they may come back)
  /ban NAME|ADDRESS [MIN]    remove and refuse an address, for MIN minutes or until restart
  /unban ADDRESS             lift a ban
  /bans                      the bans in force
  /help                      this list
Ctrl-C stops the server."""


def carry_out(server: ChatServer, line: str) -> str:
    """`execute`, for a console: a failing command is logged and answered, never raised, since
    a bug in one command must not stop the server."""
    try:
        return execute(server, line)
    except Exception:
        log.exception("the command %r failed", line)
        return "That command failed because of an internal error (see the log)."


def execute(server: ChatServer, line: str) -> str:
    """Carry out one console line; the answer to print (never raises for bad input)."""
    line = line.strip()
    if not line:
        return ""
    if not line.startswith("/"):
        return "To talk to everyone type /say TEXT; /help lists the commands."
    command, _, rest = line.partition(" ")
    rest = rest.strip()
    handler = _COMMANDS.get(command.lower())
    if handler is None:
        return f"Unknown command {strip_unsafe(command)}; /help lists the commands."
    return handler(server, rest)


@dataclass(frozen=True)
class Question:
    """A command that does more than it says, held until the operator answers its question."""

    said: str  # what it would do, in full
    ask: str  # the question, answered y or n (no is the default)
    carry_out: Callable[[], str]  # what a yes does; its answer
    no: str  # the answer to a no


def question(server: ChatServer, line: str) -> Question | None:
    """The question to ask before carrying out `line` in a terminal, or None when it needs none.

    `/ban NAME` bans the member's address, which removes every connection from there: when that
    is more than the member named, the operator is told who and asked first.  A yes bans the
    address then (whoever holds the name by the time of the answer).  In a cluster, connections
    to the other processes cannot be listed here; the question says they go too.
    """
    command, _, rest = line.strip().partition(" ")
    target, _, minutes_text = rest.strip().partition(" ")
    member = server.member(target) if command.lower() == "/ban" and target else None
    seconds, problem = _ban_length(minutes_text)
    if member is None or problem:
        return None  # an address, or a line refused anyway: carried out as it is
    key = address_key(member.host)
    removed = [c for c in server.connections if address_key(c.host) == key and not c.done]
    if all(c is member for c in removed):
        return None
    said = preview(server, line)
    if server.cluster is not None:
        said += " Connections from there to the cluster's other processes are closed too."
    return Question(
        said=said,
        ask=f"Ban and remove all {len(removed)}? [y/N] ",
        carry_out=lambda: _ban_host(server, member.host, seconds),
        no="Nobody was banned.",
    )


def command_names() -> list[str]:
    """The operator's commands, for completion."""
    return list(_COMMANDS)


def preview(server: ChatServer, line: str) -> str:
    """What `line` would do, in one or two sentences, without doing it (the operator's page
    asks before each action); a line that would be refused gets the refusal."""
    command, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    command = command.lower()
    if command == "/say":
        problem = text_problem(rest, server.config.max_text)
        if problem:
            return f"Not sent: {problem[1]}"
        return f"This sends “{rest}” to {counted(server.online, 'member')}, from server."
    if command == "/kick":
        name, _, reason = rest.partition(" ")
        member = server.member(name) if name else None
        if member is None and name and server.cluster is not None:
            return (
                f"This asks the process that holds {strip_unsafe(name)!r}, if any, to remove them."
            )
        if member is None:
            return _kick(server, rest)  # the refusal it would give
        why = f" with the reason “{reason.strip()}”" if reason.strip() else ""
        return f"This removes {member.name} ({member.peer}) from the chat{why}; they may come back."
    if command == "/ban":
        target, _, minutes_text = rest.partition(" ")
        member = server.member(target) if target else None
        host = member.host if member is not None else target.strip("[]")
        try:
            key = address_key(str(ipaddress.ip_address(host)))
        except ValueError:
            return (
                _ban(server, rest)
                if not target
                else (f"{strip_unsafe(target)!r} is neither a member's name nor an IP address.")
            )
        removed = sorted(
            c.name or c.peer
            for c in server.connections
            if address_key(c.host) == key and not c.done
        )
        how_long = (
            f"for {minutes_text.strip()} minutes" if minutes_text.strip() else "until restart"
        )
        who = (
            f" and removes {', '.join(removed)} ({counted(len(removed), 'connection')})"
            if removed
            else "; nobody from there is connected now"
        )
        return f"This bans {key} {how_long}{who}."
    if command == "/unban":
        return f"This lifts the ban on {strip_unsafe(rest)}." if rest else "Usage: /unban ADDRESS"
    return (
        execute(server, line)
        if command in ("/who", "/bans", "/help")
        else (f"Unknown command {strip_unsafe(command)}; /help lists the commands.")
    )


def _who(server: ChatServer, rest: str) -> str:
    names = [name for room in server.rooms.values() for name in room.sorted_names()]
    if not names:
        return "Nobody is here."
    lines = [f"{members_online(len(names))}:"]
    for name in names:
        member = server.member(name)
        lines.append(f"  {name}  {member.peer if member else ''}")
    return "\n".join(lines)


def _say(server: ChatServer, rest: str) -> str:
    problem = text_problem(rest, server.config.max_text)
    if problem:
        return f"Not sent: {problem[1]}"
    server.announce(rest)
    members = server.online
    return f"Sent to {counted(members, 'member')}."


def _kick(server: ChatServer, rest: str) -> str:
    name, _, reason = rest.partition(" ")
    if not name:
        return "Usage: /kick NAME [REASON]"
    member = server.member(name)
    problem = text_problem(reason.strip(), MAX_REASON) if reason.strip() else None
    if problem:  # the reason reaches the member's terminal, so it is checked like a message
        return f"Not removed: the reason is refused ({problem[1]})"
    if member is None and server.cluster is not None:
        server.cluster.acts.kick_elsewhere(name, reason.strip() or None)
        return f"Asked the process that holds {strip_unsafe(name)!r}, if any, to remove them."
    if member is None:
        return f"Nobody called {strip_unsafe(name)!r} is here."
    real_name = member.name
    server.kick(member, reason.strip() or None)
    return f"Removed {real_name}."


def _ban(server: ChatServer, rest: str) -> str:
    target, _, minutes_text = rest.partition(" ")
    if not target:
        return "Usage: /ban NAME|ADDRESS [MINUTES]"
    seconds, problem = _ban_length(minutes_text)
    if problem:
        return problem
    member = server.member(target)
    if member is not None:
        host = member.host
    else:
        try:
            host = str(ipaddress.ip_address(target.strip("[]")))
        except ValueError:
            return f"{strip_unsafe(target)!r} is neither a member's name nor an IP address."
    return _ban_host(server, host, seconds)


def _ban_host(server: ChatServer, host: str, seconds: float | None) -> str:
    removed = server.ban(host, seconds)
    how_long = "until the server restarts" if seconds is None else f"for {_minutes(seconds)}"
    who = f"; removed {', '.join(sorted(removed))}" if removed else ""
    return f"Banned {address_key(host)} {how_long}{who}."


def _ban_length(minutes_text: str) -> tuple[float | None, str | None]:
    """A ban's seconds (None: until restart), or why the minutes given are refused."""
    if not minutes_text.strip():
        return None, None
    try:
        minutes = float(minutes_text)
    except ValueError:
        minutes = math.nan
    if not (0 < minutes <= MAX_BAN_MINUTES):  # also refuses nan and inf
        return None, (
            f"Minutes must be a number above 0 and at most {MAX_BAN_MINUTES:,}, "
            f"not {strip_unsafe(minutes_text.strip())!r}."
        )
    return minutes * 60, None


def _unban(server: ChatServer, rest: str) -> str:
    if not rest:
        return "Usage: /unban ADDRESS"
    if server.unban(rest.strip("[]")):
        return f"Lifted the ban on {address_key(rest.strip('[]'))}."
    return f"{strip_unsafe(rest)} is not banned."


def _bans(server: ChatServer, rest: str) -> str:
    bans = server.guard.bans()
    if not bans:
        return "No bans."
    return "\n".join(
        f"  {key}  {'until restart' if left is None else _minutes(left) + ' left'}"
        for key, left in sorted(bans.items())
    )


def _help(server: ChatServer, rest: str) -> str:
    return HELP


def _minutes(seconds: float) -> str:
    """`45 seconds`, `1 minute`, `90 minutes`: a ban's length as a person says it."""
    if seconds < 60:
        whole = max(1, math.ceil(seconds - 1e-9))
        return counted(whole, "second")
    minutes = math.ceil(seconds / 60 - 1e-9)
    return f"{minutes:,} minute{'' if minutes == 1 else 's'}"  # thousands separated


_COMMANDS = {
    "/who": _who,
    "/say": _say,
    "/kick": _kick,
    "/ban": _ban,
    "/unban": _unban,
    "/bans": _bans,
    "/help": _help,
}
