"""How the session's lines look on this screen: in the time format the settings say, and with a
line where the day changes.

The state asks this for its lines instead of calling `render` itself, so that the time format
(which `/set` may change) and the day of the last line shown are kept in one place.  No screen
and no connection: lines in, lines out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from tcpchat.client.settings import Settings
from tcpchat.client.ui.render import (
    Fragments,
    render_asked,
    render_event,
    render_own,
    render_welcome,
)
from tcpchat.protocol import Message, Welcome


def day_line(day: date) -> Fragments:
    """`── Friday 4 December 2026 ──`: the lines below are of that day."""
    return [("class:day", f"── {day:%A} {day.day} {day:%B %Y} ──")]


def _today() -> date:
    return datetime.now().astimezone().date()


class Look:
    """The screen's lines in the chosen time format, a day line before the first of a new day."""

    def __init__(self, settings: Settings, today: Callable[[], date] = _today) -> None:
        self.settings = settings
        self.day = today()  # the day of the last live line shown

    @property
    def time_format(self) -> str:
        return self.settings.strftime

    def dated(self, ts: datetime, line: Fragments | None) -> list[Fragments]:
        """A live `line` of time `ts` (none: nothing), after a day line if its day is new.

        Only a later day is new: a line stamped earlier (a server whose clock is behind) does
        not take the screen back a day."""
        if line is None:
            return []
        day = ts.astimezone().date()
        if day <= self.day:
            return [line]
        self.day = day
        return [day_line(day), line]

    def event(self, event: object, me: str) -> list[Fragments]:
        line = render_event(event, me, self.time_format)
        ts = getattr(event, "ts", None)
        if line is None or not isinstance(ts, datetime):
            return [] if line is None else [line]
        return self.dated(ts, line)

    def own(
        self, text: str, ts: datetime, me: str, to: str | None, delivered: int, action: bool
    ) -> list[Fragments]:
        line = render_own(
            text,
            ts,
            me,
            to=to,
            delivered=delivered,
            action=action,
            time_format=self.time_format,
        )
        return self.dated(ts, line)

    def welcome(
        self,
        welcome: Welcome,
        history: list[Message] | None = None,
        title: str = "earlier messages",
    ) -> list[Fragments]:
        return render_welcome(welcome, history=history, title=title, time_format=self.time_format)

    def asked(
        self, title: str, messages: list[Message], me: str, end: str | None = None
    ) -> list[Fragments]:
        return render_asked(title, messages, me, end=end, time_format=self.time_format)
