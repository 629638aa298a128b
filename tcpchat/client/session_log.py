"""The chat screen's own log of a session (`tcpchat join --log FILE`): every line the screen
shows, as plain text, for the person to keep.

Written as irssi writes its logs, so the tools people already use on those read it: the lines
as shown (`12:30 alice: hi`), opened and closed with a dated line, and a `--- Day changed` line
when the date moves on (the lines themselves carry only the time).  Appended to, never
truncated: one file can hold many sessions.  Each line is flushed as it is written, so that
`tail -f` follows the chat and a crash loses nothing shown.  No terminal and no network here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

from tcpchat.client.errors import ChatError

# Every row of a logged line after its first, marked as on the screen (layout.CONTINUED) under
# a fixed indent (a log has no width): a message with a line break in it cannot write a line
# that passes for one of the log's own.
CONTINUED = "    ¦ "

Now = Callable[[], datetime]


class SessionLog:
    """An open log file; `write` each line shown, `close` at the end."""

    def __init__(self, file: TextIO, *, now: Now = datetime.now) -> None:
        self._file = file
        self._now = now
        self._day: date | None = None

    @classmethod
    def open(cls, path: Path, *, now: Now = datetime.now) -> SessionLog:
        """Open `path` for appending: an OSError when it cannot be written comes before anything
        else happens (the caller says so in a sentence)."""
        return cls(path.open("a", encoding="utf-8"), now=now)

    def start(self, about: str) -> None:
        """Say which session starts (`alice on chat.example.org`)."""
        self._mark(f"Log opened {self._stamp()} ({about})")

    def _stamp(self) -> str:
        moment = self._now()
        self._day = moment.date()
        return moment.strftime("%a %b %d %H:%M:%S %Y")

    def _mark(self, text: str) -> None:
        self._file.write(f"--- {text}\n")
        self._file.flush()

    def write(self, line: str) -> None:
        """One line as the screen showed it (already stripped of anything a terminal acts on)."""
        today = self._now().date()
        if self._day is not None and today != self._day:
            self._mark(f"Day changed {today.strftime('%a %b %d %Y')}")
        self._day = today
        self._file.write(line.replace("\n", "\n" + CONTINUED) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Say the session ended, if one started, and close the file."""
        if self._file.closed:
            return
        if self._day is not None:
            self._mark(f"Log closed {self._stamp()}")
        self._file.close()


def open_log(file: str | None) -> SessionLog | None:
    """The session's log in `file` (`~` is the home folder, as a settings file may write it);
    None without one; ChatError in a sentence when it cannot be written."""
    if file is None:
        return None
    path = Path(file).expanduser()
    try:
        return SessionLog.open(path)
    except OSError as problem:
        raise ChatError(f"cannot write the log {path}: {problem.strerror or problem}.") from None
