"""`tcpchat join` in a real pty with the options, settings file and terminal a test chooses, and
what a terminal sees of it besides the screen: the window's title, bells, and the raw bytes
(desktop notifications are escape sequences no screen shows).  Every chat screen test starts
its chat here.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pyte

from support import REPO, TIMEOUT
from support.screen import COLUMNS, ROWS, Terminal

PROMPT = "alice› "
# The terminal's answers to focus reporting (CSI ? 1004 h): the window gained or lost the focus.
FOCUS_IN, FOCUS_OUT = "\x1b[I", "\x1b[O"
_OSC = re.compile(rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class ChatPty(Terminal):
    """The chat screen: an input line starting with the prompt and a toolbar at the bottom; the
    bells counted."""

    def __init__(self, child: pexpect.spawn, rows: int = ROWS, columns: int = COLUMNS) -> None:
        super().__init__(child, rows, columns)
        self.bells = 0
        self.screen.bell = self._bell  # type: ignore[method-assign]
        self.stream = pyte.ByteStream(self.screen)  # its handlers are looked up when attached

    def _bell(self, *args: object) -> None:
        self.bells += 1

    def osc(self, code: str) -> list[str]:
        """The bodies of the operating system commands `code` written so far (`777`, `9`)."""
        prefix = f"\x1b]{code};".encode()
        found = [match.group() for match in _OSC.finditer(self.raw)]
        return [
            seq[len(prefix) :].rstrip(b"\x07").removesuffix(b"\x1b\\").decode()
            for seq in found
            if seq.startswith(prefix)
        ]

    @property
    def title(self) -> str:
        return str(self.screen.title)

    def row_of(self, text: str) -> int:
        return next(n for n, line in enumerate(self.lines) if text in line)

    def input_row(self) -> int:
        """The row of the input line: the last one starting with the prompt."""
        rows = [n for n, line in enumerate(self.lines) if line.startswith(PROMPT.rstrip())]
        assert rows, f"no input line on the screen:\n{self.dump()}"
        return rows[-1]

    def input_line(self) -> str | None:
        """The input line's text, or None while no prompt is on the screen."""
        lines = [line for line in self.lines if line.startswith(PROMPT.rstrip())]
        return lines[-1] if lines else None

    def toolbar(self) -> str:
        return self.lines[-1]

    def wait_gone(self, text: str) -> None:
        self.wait_for(lambda: not any(text in line for line in self.lines), f"no {text!r}")


def spawn_chat(
    port: int,
    config_dir: Path,
    *options: str,
    rows: int = ROWS,
    columns: int = COLUMNS,
    env: dict[str, str] | None = None,
) -> pexpect.spawn:
    """`tcpchat join 127.0.0.1 --port PORT [OPTIONS]`, with tcpchat's folder `config_dir` and
    nothing of the caller's TCPCHAT_* variables, COLUMNS or LINES; `env` is added."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TCPCHAT_") and key not in ("COLUMNS", "LINES")
    }
    environment.update(TERM="xterm-256color", TCPCHAT_CONFIG_DIR=str(config_dir), **(env or {}))
    return pexpect.spawn(
        sys.executable,
        ["-m", "tcpchat", "join", "127.0.0.1", "--port", str(port), *options],
        env=environment,
        cwd=str(REPO),
        dimensions=(rows, columns),
        timeout=TIMEOUT,
    )


@contextmanager
def chat_pty(
    port: int,
    config_dir: Path,
    *options: str,
    rows: int = ROWS,
    columns: int = COLUMNS,
    env: dict[str, str] | None = None,
    settings: str = "",
) -> Iterator[ChatPty]:
    """The chat in a pty once its prompt and toolbar are up (alice's, unless `options` or the
    `settings` file say otherwise); killed at the end."""
    if settings:
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "settings.ini").write_text(settings, encoding="utf-8")
    child = spawn_chat(port, config_dir, *options, rows=rows, columns=columns, env=env)
    term = ChatPty(child, rows=rows, columns=columns)
    try:
        term.wait_for(
            lambda: "online" in term.toolbar() and "› " in "".join(term.lines),
            "the prompt and the toolbar",
        )
        yield term
    finally:
        if child.isalive():
            child.kill(9)
            child.wait()
        child.close(force=True)


def exit_status(term: Terminal) -> int:
    """Read the screen to the end of the program; its exit status."""
    term.wait_for(lambda: term.eof, "the end of the program")
    term.child.wait()
    assert term.child.exitstatus is not None, (term.child.signalstatus, term.dump())
    return int(term.child.exitstatus)
