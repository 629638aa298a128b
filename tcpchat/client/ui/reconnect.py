"""When the chat screen tries to reconnect, and what each failed try means.

Delays double from `RECONNECT_FIRST` to `RECONNECT_MAX`, each stretched by up to a quarter at
random so that the members of a restarted server do not all knock at the same moment.  A failed
try is worth a word only when it says something new; a password the server no longer takes ends
the retries.  No sockets and no sleeping here: the screen waits and connects.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpchat.client.connection import ChatError, JoinRefused, TlsRefused
from tcpchat.protocol import ErrorCode

RECONNECT_FIRST = 1.0  # seconds
RECONNECT_MAX = 30.0  # seconds
JITTER = 1.25  # a delay is stretched by a factor from 1 to this


@dataclass(frozen=True)
class Failure:
    """What one failed try means: sentences to show, the toolbar's reason, or the end."""

    said: list[str] = field(default_factory=list)
    problem: str = ""  # why, for the toolbar while waiting ("" when offline says it all)
    password_refused: str | None = (
        None  # the server's refusal, when the password is no longer taken
    )


class Retries:
    """The reconnect policy of one outage: how long to wait before each try, and what to say
    when one fails (each sentence once, not again at every try)."""

    def __init__(
        self,
        first: float | None = None,
        most: float | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.delay = RECONNECT_FIRST if first is None else first
        self.most = RECONNECT_MAX if most is None else most
        self.jitter = jitter
        self._told = ""  # the refusal we last showed (the door's, or the name refused)
        self._warned = ""  # the certificate problem we last showed

    def wait(self) -> float:
        """Seconds until the next try."""
        return self.delay * self.jitter(1.0, JITTER)

    def failed(self, error: ChatError, name: str) -> Failure:
        """One try failed with `error` while rejoining as `name`; the next waits longer.

        A refused rejoin (name taken, server full) is worth a word; a refused connection is
        what "offline" already says.  A refused certificate is worth the whole warning, once.
        """
        self.delay = min(self.delay * 2, self.most)
        text = str(error)
        refused = isinstance(error, JoinRefused)
        if isinstance(error, JoinRefused) and error.error.code is ErrorCode.AUTH_FAILED:
            return Failure(password_refused=text)
        said = []
        door = text.startswith("the server refused the connection")
        problem = text.rstrip(".") if refused or door else ""
        if door and self._told != text:
            self._told = text
            said.append(_sentence(text))
        if isinstance(error, TlsRefused):
            problem = "TLS refused"
            if self._warned != text:
                self._warned = text
                said.append(_sentence(text))
        if isinstance(error, JoinRefused) and error.can_retry and self._told != name:
            self._told = name
            said.append(f"{error} Type /nick NAME to rejoin as someone else.")
        return Failure(said, problem)


def _sentence(text: str) -> str:
    return f"{text[0].upper()}{text[1:]}"
