"""A child process in a real pseudo-terminal, and the screen it draws, for end-to-end tests.

The child runs in a pty (pexpect); everything it writes is fed to a pyte screen, which also
answers the terminal's cursor-position requests as a real terminal would.  Every wait polls the
screen with a deadline and fails showing the screen.  POSIX only (pexpect needs a pty).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pexpect
import pyte

from support import TIMEOUT

SCREEN_WAIT = 2 * TIMEOUT  # ~10 s: starting Python (and prompt_toolkit) in a child takes a moment
ROWS, COLUMNS = 24, 100
ALTERNATE = 1049  # DEC private mode: the alternate screen, saving the cursor


class AlternateScreen(pyte.Screen):
    """pyte's screen with the alternate screen, which pyte lacks: a full-screen program draws
    there, and the terminal shows what it had, as it was, once the program leaves it."""

    saved: tuple[Any, Any] | None = None

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and ALTERNATE in modes and self.saved is None:
            self.saved = (copy.deepcopy(self.buffer), copy.copy(self.cursor))
            self.erase_in_display(2)
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and ALTERNATE in modes and self.saved is not None:
            (self.buffer, self.cursor), self.saved = self.saved, None
            self.dirty.update(range(self.lines))
        super().reset_mode(*modes, **kwargs)


class Terminal:
    """A child process in a pty and the pyte screen that shows what it wrote."""

    def __init__(self, child: pexpect.spawn, rows: int = ROWS, columns: int = COLUMNS) -> None:
        self.child = child
        self.screen = AlternateScreen(columns, rows)
        # Answer device status / cursor position requests (prompt_toolkit asks) as a terminal does.
        self.screen.write_process_input = self._answer
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""  # all the child wrote, for what no screen shows (titles, notifications)
        self.eof = False

    def _answer(self, data: str) -> None:
        if not self.eof:
            self.child.send(data.encode())

    def pump(self, wait: float = 0.05) -> None:
        """Feed the screen whatever the child wrote (waiting at most `wait` for something)."""
        try:
            data = self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.raw += data
        self.stream.feed(data)

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def dump(self) -> str:
        cursor = self.screen.cursor
        rows = "\n".join(f"{n:2}|{line}" for n, line in enumerate(self.lines))
        return f"{rows}\n(cursor at row {cursor.y}, column {cursor.x})"

    def wait_for(
        self, holds: Callable[[], object], what: str, timeout: float = SCREEN_WAIT
    ) -> None:
        """Read until `holds()` is true of the screen; fail with the screen after `timeout`."""
        deadline = time.monotonic() + timeout
        while not holds():
            if time.monotonic() > deadline or self.eof:
                raise AssertionError(f"the screen never showed {what}:\n{self.dump()}")
            self.pump()

    def wait_text(self, text: str, timeout: float = SCREEN_WAIT) -> None:
        self.wait_for(lambda: any(text in line for line in self.lines), repr(text), timeout)

    def cursor_line(self) -> str:
        """The text of the row the cursor is on: a shell's command line."""
        return self.lines[self.screen.cursor.y]

    def type(self, text: str) -> None:
        self.child.send(text.encode())
