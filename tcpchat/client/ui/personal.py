"""What this screen alone knows of the person: whom they ignore, who wrote to them privately
last (`/r`), and whether they are away; and how the local commands act on it.

None of it is the server's: the protocol has no away state, no ignore list and no quit message
(PROTOCOL.md), and these need none.  Ignoring hides a name's messages and private messages on
this screen (and its bell); being away collects what mentioned you or came privately, to be
shown together on `/back`, and, given a TEXT, answers each person who writes privately, once,
with it (as IRC servers answer a message to someone away).  Kept for the session only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from prompt_toolkit.shortcuts import clear

from tcpchat.client.ui.local_commands import (
    Away,
    Back,
    Clear,
    Ignore,
    Local,
    Quit,
    Reply,
)
from tcpchat.client.ui.render import Fragments, render_notice, render_problem
from tcpchat.client.ui.state import ChatState, Outcome
from tcpchat.protocol import Message, Private, Renamed, fold_name, name_problem, normalize_name
from tcpchat.words import counted, duration

AUTO_REPLY = "(auto-reply) away: "  # never answered itself: two people away do not ping-pong
AWAY_KEPT = 100  # lines kept for /back; the oldest go first


class Screen(Protocol):
    """What the local commands need of the chat screen."""

    @property
    def state(self) -> ChatState: ...

    def show_all(self, lines: Iterable[Fragments]) -> None: ...

    async def queue(self, text: str, to: str | None = None, *, me: bool = False) -> None: ...


@dataclass
class Absence:
    """Since when the person is away, what answers private messages, and what came meanwhile."""

    since: float
    text: str
    messages: int = 0
    mentions: int = 0
    privates: int = 0
    kept: list[Fragments] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # folded names given the TEXT already


class Personal:
    """The ignore list, the last private correspondent and the absence, if any."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.ignored: dict[str, str] = {}  # folded name: the name as typed
        self.last_private: str | None = None
        self.away: Absence | None = None

    def receive(self, event: object, outcome: Outcome) -> tuple[Outcome, list[tuple[str, str]]]:
        """What to do about `event` after the state's `outcome`: nothing at all for an ignored
        name; and the private replies (to, text) to send while away."""
        if isinstance(event, Renamed):
            self._renamed(event.old, event.new)
        if not isinstance(event, (Message, Private)):
            return outcome, []
        if fold_name(event.sender) in self.ignored:
            return Outcome(send=outcome.send), []
        if isinstance(event, Private):
            self.last_private = event.sender
        if self.away is None:
            return outcome, []
        return outcome, self._while_away(event, outcome)

    def _renamed(self, old: str, new: str) -> None:
        if fold_name(old) in self.ignored:
            del self.ignored[fold_name(old)]
            self.ignored[fold_name(new)] = new
        if self.last_private is not None and fold_name(self.last_private) == fold_name(old):
            self.last_private = new

    def _while_away(self, event: Message | Private, outcome: Outcome) -> list[tuple[str, str]]:
        away = self.away
        assert away is not None
        if isinstance(event, Message):
            away.messages += 1
            away.mentions += outcome.bell
        else:
            away.privates += 1
        if outcome.bell:  # a mention or a private message
            away.kept = [*away.kept, *outcome.lines][-AWAY_KEPT:]
        sender = fold_name(event.sender)
        if (
            isinstance(event, Private)
            and away.text
            and sender not in away.answered
            and not event.text.startswith(AUTO_REPLY)
        ):
            away.answered.add(sender)
            return [(event.sender, AUTO_REPLY + away.text)]
        return []

    def hint(self) -> Fragments:
        """Beside the input line while away."""
        return [("class:notice", " away")] if self.away is not None else []

    # --- the commands -------------------------------------------------------------------

    async def act(self, command: Local, screen: Screen) -> bool:
        """Carry out a local command; False means leave (`/quit MESSAGE`, once it is queued)."""
        if isinstance(command, Quit):
            await screen.queue(command.text)
            return False
        if isinstance(command, Reply):
            if self.last_private is None:
                screen.show_all([render_problem("nobody wrote to you privately yet; /r answers "
                                                "the last one who did.")])  # fmt: skip
            else:
                await screen.queue(command.text, to=self.last_private)
        elif isinstance(command, Clear):
            clear()
        elif isinstance(command, Away):
            screen.show_all(self._go_away(command.text))
        elif isinstance(command, Back):
            screen.show_all(self._come_back())
        elif isinstance(command, Ignore):
            screen.show_all(self._ignore(command.name, screen.state))
        else:
            screen.show_all(self._unignore(command.name))
        return True

    def _ignore(self, typed: str, state: ChatState) -> list[Fragments]:
        if not typed:
            if not self.ignored:
                return [render_notice("You ignore nobody; /ignore NAME hides NAME's messages.")]
            names = ", ".join(sorted(self.ignored.values(), key=fold_name))
            return [render_notice(f"You ignore {names}; /unignore NAME shows them again.")]
        name = normalize_name(typed)
        # As the member writes it, when here: `/ignore BOB` ignores bob.
        name = next((n for n in state.names if fold_name(n) == fold_name(name)), name)
        problem = name_problem(name)
        if fold_name(name) == fold_name(state.name):
            problem = "you cannot ignore yourself."
        if problem:
            return [render_problem(problem)]
        self.ignored[fold_name(name)] = name
        return [render_notice(
            f"Ignoring {name}: their messages and private messages are hidden on this screen "
            f"(they are not told) until /unignore {name}."
        )]  # fmt: skip

    def _unignore(self, typed: str) -> list[Fragments]:
        name = self.ignored.pop(fold_name(normalize_name(typed)), None)
        if name is None:
            return [render_problem(f"you do not ignore {typed}; /ignore lists whom you do.")]
        return [render_notice(f"{name}'s messages show again.")]

    def _go_away(self, text: str) -> list[Fragments]:
        since = self.away.since if self.away is not None else self.clock()
        self.away = Absence(since=since, text=text)
        answer = f"; private messages are answered once each with “{text}”" if text else ""
        return [render_notice(
            f"You are away{answer}. /back shows what mentioned you or came privately meanwhile "
            "(the others see no change)."
        )]  # fmt: skip

    def _come_back(self) -> list[Fragments]:
        away, self.away = self.away, None
        if away is None:
            return [render_problem("you are not away; /away [TEXT] marks you away.")]
        summary = (
            f"back after {duration(self.clock() - away.since)}: "
            f"{counted(away.messages, 'message')}, {counted(away.mentions, 'mention')} of you, "
            f"{counted(away.privates, 'private message')}"
        )
        if not away.kept:
            return [render_notice(f"{summary[0].upper()}{summary[1:]}.")]
        return [
            [("class:asked-title", f"── {summary} ──")],
            *away.kept,
            [("class:asked-title", "── now ──")],
        ]
