"""How tcpchat says numbers and times to people: counts and plurals, durations, clock times, and
what a member's leaving is called.

One voice for the server's lines, plain mode and the chat screen, so that they never disagree
(`1 member` in one place and `1 members` in another, `90 seconds` here and `1.5 minutes` there).
A leaf: standard library only, and nothing of tcpchat, so the protocol and both sides can use it.
"""

from __future__ import annotations

from datetime import datetime


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """`1 minute`, `0.5 minutes`, `3 deliveries`: a number and its noun, plural unless one.

    `plural` for the nouns that do not just add an `s` (`counted(3, "delivery", "deliveries")`).
    """
    if type(count) is int:
        number = str(count)  # the usual case, without the checks for a float
    elif count == int(count):
        number = str(int(count))  # `2.0` minutes are `2 minutes`
    else:
        number = f"{count:g}"
    return f"{number} {noun if count == 1 else plural or noun + 's'}"


def members_online(count: int) -> str:
    """`1 member online`, `3 members online`."""
    return f"{counted(count, 'member')} online"


def duration(seconds: float) -> str:
    """`45 seconds`, `1 minute`, `10 minutes`: how a person says a wait or an idle time.

    Whole seconds up to a minute and a half, whole minutes beyond: nobody waits for "1.5 minutes",
    and never `0 seconds`, which reads as "now" when some time is left.
    """
    if seconds < 90:
        return counted(max(1, round(seconds)), "second")
    return counted(round(seconds / 60), "minute")


CLOCK = "%H:%M"


def clock(ts: datetime, time_format: str = CLOCK) -> str:
    """`HH:MM` in this machine's time zone (the server's, in plain mode: one rendering for all);
    the chat screen may ask for another `time_format` (`%H:%M:%S`)."""
    return ts.astimezone().strftime(time_format)


# How a leave reads to people, in plain mode and on the chat screen, by the wire string of its
# reason (`left.reason` of PROTOCOL.md): the protocol's `LeaveReason` values are those strings.
LEAVE_WORDS: dict[str, str] = {
    "quit": "left",
    "disconnected": "lost the connection",
    "timeout": "timed out",
    "kicked": "was removed",
    "slow": "was dropped for not keeping up",
    "shutdown": "left as the server shut down",
    "replaced": "reconnected",
}
