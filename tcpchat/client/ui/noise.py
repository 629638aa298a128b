"""Which joins and leaves the chat screen shows: all, none, or irssi's "smart" rule.

The room's count and names follow every join and leave whatever is shown (`state` tracks them
first); this only decides whether a line is printed.  No screen and no clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from tcpchat.client.settings import Settings
from tcpchat.protocol import Joined, LeaveReason, Left, fold_name

# In smart mode, a leave is shown when its member spoke this recently (in seconds): someone
# you may have been talking with.  irssi's smartfilter and weechat's smart filter use minutes
# of this order (weechat's default is 5, smartfilter's 10).
SPOKE_RECENTLY = 10 * 60.0


class Noise:
    """Who spoke when, and so which joins and leaves are worth a line."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._spoke: dict[str, float] = {}  # folded name: when it last said something

    def spoke(self, name: str) -> None:
        self._spoke[fold_name(name)] = self.clock()

    def renamed(self, old: str, new: str) -> None:
        when = self._spoke.pop(fold_name(old), None)
        if when is not None:
            self._spoke[fold_name(new)] = when

    def shows(self, event: object) -> bool:
        """Whether this event gets a line: any but a join or a leave does.

        `quiet` (a big room) and `joins = off` show none; `smart` shows no joins (a newcomer
        shows up by speaking), and a leave only of someone who spoke lately, or who was
        removed by the operator (that is the room's business, not noise).
        """
        if not isinstance(event, (Joined, Left)):
            return True
        if self.settings.quiet or self.settings.joins == "off":
            return False
        if self.settings.joins == "on":
            return True
        if isinstance(event, Joined):
            return False
        if event.reason == LeaveReason.KICKED:
            return True
        spoke = self._spoke.get(fold_name(event.name))
        return spoke is not None and self.clock() - spoke < SPOKE_RECENTLY
