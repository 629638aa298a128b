"""The operator's commands, typed into the console where `tcpchat serve` runs.

`/kick NAME [reason]`, `/ban NAME|ADDRESS [minutes]`, `/unban ADDRESS`, `/bans`, `/who`,
`/say TEXT` and `/help`.  Each line gets one answer for the operator; the server does the work.
"""

from __future__ import annotations

import ipaddress
import math
from typing import TYPE_CHECKING

from tcpchat.protocol import strip_unsafe, text_problem
from tcpchat.server.guard import address_key
from tcpchat.words import counted, members_online

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

MAX_REASON = 300  # characters in a /kick reason
MAX_BAN_MINUTES = 10 * 365 * 24 * 60  # ten years: longer is "until restart"

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
    if member is None:
        return f"Nobody called {strip_unsafe(name)!r} is here."
    problem = text_problem(reason.strip(), MAX_REASON) if reason.strip() else None
    if problem:  # the reason reaches the member's terminal, so it is checked like a message
        return f"Not removed: the reason is refused ({problem[1]})"
    real_name = member.name
    server.kick(member, reason.strip() or None)
    return f"Removed {real_name}."


def _ban(server: ChatServer, rest: str) -> str:
    target, _, minutes_text = rest.partition(" ")
    if not target:
        return "Usage: /ban NAME|ADDRESS [MINUTES]"
    seconds: float | None = None
    if minutes_text.strip():
        try:
            minutes = float(minutes_text)
        except ValueError:
            minutes = math.nan
        if not (0 < minutes <= MAX_BAN_MINUTES):  # also refuses nan and inf
            return (
                f"Minutes must be a number above 0 and at most {MAX_BAN_MINUTES:,}, "
                f"not {strip_unsafe(minutes_text.strip())!r}."
            )
        seconds = minutes * 60
    member = server.member(target)
    if member is not None:
        host = member.host
    else:
        try:
            host = str(ipaddress.ip_address(target.strip("[]")))
        except ValueError:
            return f"{strip_unsafe(target)!r} is neither a member's name nor an IP address."
    removed = server.ban(host, seconds)
    how_long = "until the server restarts" if seconds is None else f"for {_minutes(seconds)}"
    who = f"; removed {', '.join(removed)}" if removed else ""
    return f"Banned {address_key(host)} {how_long}{who}."


def _unban(server: ChatServer, rest: str) -> str:
    if not rest:
        return "Usage: /unban ADDRESS"
    if server.guard.unban(rest.strip("[]")):
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
