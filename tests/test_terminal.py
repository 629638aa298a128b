"""End to end in a real pseudo-terminal: `tcpchat join` as a person sees it.

The child is the real command in a pty (pexpect); everything it writes is fed to a pyte screen,
which also answers the terminal's cursor-position requests as a real terminal would. The server
and the other member (a raw JSON line client) run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

import pexpect
import pyte

TIMEOUT = float(os.environ.get("TCPCHAT_TEST_TIMEOUT", "5"))
SCREEN_WAIT = 2 * TIMEOUT  # ~10 s: starting Python and prompt_toolkit in a child takes a moment
ROWS, COLUMNS = 24, 100
PROMPT = "alice› "
REPO = Path(__file__).resolve().parent.parent


class Terminal:
    """A child process in a pty and the pyte screen that shows what it wrote."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(COLUMNS, ROWS)
        # Answer device status / cursor position requests (prompt_toolkit asks) as a terminal does.
        self.screen.write_process_input = self._answer
        self.stream = pyte.ByteStream(self.screen)
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

    def type(self, text: str) -> None:
        self.child.send(text.encode())


def spawn_join(port: int, config_dir: Path) -> pexpect.spawn:
    # Nothing from the caller's TCPCHAT_* settings, and the size from the pty, not COLUMNS/LINES.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TCPCHAT_") and key not in ("COLUMNS", "LINES")
    }
    env.update(TERM="xterm-256color", TCPCHAT_CONFIG_DIR=str(config_dir))
    return pexpect.spawn(
        sys.executable,
        ["-m", "tcpchat", "join", "127.0.0.1", "--port", str(port), "--name", "alice"],
        env=env,
        cwd=str(REPO),
        dimensions=(ROWS, COLUMNS),
        timeout=TIMEOUT,
    )


def test_incoming_message_appears_above_a_half_typed_line_without_corrupting_it(chat, tmp_path):
    child = spawn_join(chat.port, tmp_path)
    term = Terminal(child)
    try:
        term.wait_for(
            lambda: "1 member online" in term.toolbar() and term.input_line() is not None,
            "the prompt and a toolbar with '1 member online'",
        )
        assert "you: alice" in term.toolbar()

        term.type("half a li")
        term.wait_text(PROMPT + "half a li")

        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "hello from bob", "id": "1"})
        assert bob.expect("ack")["delivered"] == 1
        term.wait_text("bob: hello from bob")
        term.wait_for(lambda: "2 members online" in term.toolbar(), "'2 members online'")

        # The half-typed line is intact, below the message, with the cursor at its end.
        input_row = term.input_row()
        assert term.lines[input_row] == PROMPT + "half a li", term.dump()
        # Nothing of the half line leaked elsewhere, and there is one input line only.
        assert [line for line in term.lines if "half a li" in line] == [PROMPT + "half a li"]
        assert sum(line.startswith(PROMPT.rstrip()) for line in term.lines) == 1, term.dump()
        print("\nThe screen with a half-typed line and bob's message:\n" + term.dump())
        assert term.row_of("bob: hello from bob") < input_row, term.dump()
        assert term.row_of("bob joined") < term.row_of("bob: hello from bob"), term.dump()
        assert (term.screen.cursor.y, term.screen.cursor.x) == (
            input_row,
            len(PROMPT + "half a li"),
        ), term.dump()

        term.type("ne\r")
        message = bob.expect("message")
        assert (message["from"], message["text"]) == ("alice", "half a line")
        term.wait_text("✓ delivered to 1")
        sent_row = term.row_of("✓ delivered to 1")
        assert "alice: half a line" in term.lines[sent_row], term.dump()
        assert term.row_of("bob: hello from bob") < sent_row, term.dump()
        # A fresh, empty input line below it.
        term.wait_for(lambda: term.input_line() == PROMPT.rstrip(), "an empty input line")
        assert term.input_row() > sent_row, term.dump()

        bob.send_json({"type": "bye"})
        term.wait_text("← bob left")
        term.wait_for(lambda: "1 member online" in term.toolbar(), "'1 member online' again")

        print("\nThe screen before Ctrl-D:\n" + term.dump())

        term.type("\x04")
        term.wait_for(lambda: term.eof, "the end of the program after Ctrl-D")
        child.wait()
        print("\nThe final screen, after Ctrl-D:\n" + term.dump())
        assert "You left the chat." in "\n".join(term.lines), term.dump()
        assert child.exitstatus == 0, (child.exitstatus, child.signalstatus, term.dump())
    finally:
        if child.isalive():
            child.kill(9)
            child.wait()
        child.close(force=True)
