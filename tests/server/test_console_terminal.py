"""End to end in a real pseudo-terminal: `tcpchat serve` as its operator sees it.

The server is the real command in a pty, drawn on a pyte screen (support/screen.py); the members
are raw JSON line clients in this process, on 127.0.0.1.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

import pexpect
from support import REPO, TIMEOUT
from support.chat import expect_closed, hello
from support.process import LISTENING, clean_env
from support.screen import ROWS, Terminal
from support.wire import LineClient

# A real `tcpchat serve` in a pty for each test: left out of the fast loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

PROMPT = "serve› "
UP = "\x1b[A"
TAB = "\t"


class ServeTerminal(Terminal):
    """`tcpchat serve` in a pty: its log lines above, and the operator's line at the bottom."""

    port = 0
    clients: list[LineClient]

    def input_line(self) -> str | None:
        """The operator's line (the last row starting with the prompt), or None while none is up."""
        lines = [line for line in self.lines if line.startswith(PROMPT.rstrip())]
        return lines[-1] if lines else None

    def wait_input(self, text: str) -> None:
        """Wait until the operator's line reads `text` after the prompt, with the cursor at its end."""
        self.wait_for(
            lambda: (
                self.input_line() == (PROMPT + text).rstrip()
                and self.screen.cursor.x == len(PROMPT + text)
            ),
            f"the operator's line {PROMPT + text!r}",
        )

    def member(self, name: str) -> LineClient:
        """A JSON member called `name`, joined from 127.0.0.1."""
        client = LineClient("127.0.0.1", self.port, TIMEOUT)
        self.clients.append(client)
        client.read_line()  # the banner
        client.send_json(hello(name))
        client.expect("welcome")
        return client


@contextmanager
def serve_terminal(tmp_path: Path, *options: str) -> Iterator[ServeTerminal]:
    """`tcpchat serve` on 127.0.0.1, a free port, in a pty, once the operator's line is up."""
    env = clean_env(tmp_path / "config")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    env["TERM"] = "xterm-256color"
    args = ["-m", "tcpchat", "serve", "--host", "127.0.0.1", "--port", "0", "--name", "t"]
    child = pexpect.spawn(
        sys.executable,
        [*args, "--memory", *options],
        env=env,
        cwd=str(REPO),
        dimensions=(ROWS, 100),
        timeout=TIMEOUT,
    )
    term = ServeTerminal(child)
    term.clients = []
    try:
        term.wait_for(lambda: any(LISTENING.search(line) for line in term.lines), "the port")
        match = next(m for line in term.lines if (m := LISTENING.search(line)))
        term.port = int(match.group(1))
        term.wait_input("")
        yield term
    finally:
        for client in term.clients:
            client.close()
        if child.isalive():
            child.kill(9)
            child.wait()
        child.close(force=True)


def test_log_lines_arrive_above_a_half_typed_command_without_corrupting_it(
    tmp_path: Path,
) -> None:
    with serve_terminal(tmp_path) as term:
        term.type("/kick bo")
        term.wait_input("/kick bo")

        bob = term.member("bob")
        bob.send_json({"type": "say", "text": "hello from bob", "id": "1"})
        bob.expect("ack")
        term.wait_text("bob: hello from bob")
        term.wait_input("/kick bo")

        # Each log line is whole on its own row, above the operator's line, which is intact.
        joined = next(n for n, line in enumerate(term.lines) if "bob joined from" in line)
        said = next(n for n, line in enumerate(term.lines) if "bob: hello from bob" in line)
        assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] bob: hello from bob", term.lines[said])
        input_row = term.lines.index(PROMPT + "/kick bo")
        assert joined < said < input_row, term.dump()
        assert term.screen.cursor.y == input_row, term.dump()

        term.type("b\r")
        term.wait_text("Removed bob.")
        expect_closed(bob)
        term.wait_input("")


def test_tab_completes_commands_and_member_names_and_up_recalls_a_command(
    tmp_path: Path,
) -> None:
    with serve_terminal(tmp_path) as term:
        term.member("bob")
        term.member("alice")
        term.wait_text("alice joined from")

        term.type("/wh" + TAB)
        term.wait_input("/who ")
        term.type("\r")
        term.wait_text("2 members online:")
        term.wait_input("")

        term.type("/ki" + TAB)
        term.wait_input("/kick ")
        term.type("AL" + TAB)  # names are matched in any case, and completed as they are
        term.wait_input("/kick alice ")

        term.type("\x15")  # Ctrl-U: the line is emptied
        term.wait_input("")
        term.type(UP)
        term.wait_input("/who ")  # as it was sent, and kept for the next run, for its owner only
    history = tmp_path / "config" / "serve-history"
    assert "/who" in history.read_text(encoding="utf-8")
    assert history.stat().st_mode & 0o777 == 0o600


def test_ban_names_everyone_it_removes_and_asks_before_removing_more_than_that_member(
    tmp_path: Path,
) -> None:
    with serve_terminal(tmp_path) as term:
        alice = term.member("alice")
        bob = term.member("bob")  # both from 127.0.0.1
        term.wait_text("bob joined from")

        term.type("/ban bob\r")
        term.wait_text("removes alice, bob")
        term.wait_text("Ban and remove all 2? [y/N]")
        term.type("\r")  # no is the default
        term.wait_text("Nobody was banned.")
        term.wait_input("")
        term.type("/who\r")
        term.wait_text("2 members online:")

        term.type("/ban bob\r")
        term.wait_for(
            lambda: (
                sum(line.startswith("Ban and remove") for line in term.lines) == 2
                and term.cursor_line().startswith("Ban and remove")
            ),
            "the question again, in place of the operator's line",
        )
        term.child.sendintr()  # Ctrl-C gives the question up: a no, and the server goes on
        term.wait_for(
            lambda: sum("Nobody was banned." in line for line in term.lines) == 2, "a second no"
        )
        term.wait_input("")

        term.type("/ban bob 5\r")
        term.wait_text("Ban and remove all 2? [y/N]")
        term.type("y\r")
        term.wait_text("Banned 127.0.0.1 for 5 minutes; removed alice, bob.")
        expect_closed(alice)
        expect_closed(bob)
        term.wait_input("")


def test_a_ban_of_a_member_alone_on_its_address_needs_no_question(tmp_path: Path) -> None:
    with serve_terminal(tmp_path) as term:
        bob = term.member("bob")
        term.wait_text("bob joined from")
        term.type("/ban bob\r")
        term.wait_text("Banned 127.0.0.1 until the server restarts; removed bob.")
        assert not any("[y/N]" in line for line in term.lines), term.dump()
        expect_closed(bob)


def test_ctrl_c_leaves_a_search_of_the_history_and_the_server_goes_on(tmp_path: Path) -> None:
    with serve_terminal(tmp_path) as term:
        term.type("/bans\r")
        term.wait_text("No bans.")
        term.type("\x12ban")  # Ctrl-R
        term.wait_text("reverse-i-search")
        term.child.sendintr()
        term.wait_input("")
        term.type("/who\r")
        term.wait_text("Nobody is here.")


def test_ctrl_c_stops_the_server_and_gives_the_terminal_back(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    with serve_terminal(tmp_path, "--log-file", str(log_file)) as term:
        term.type("/who")
        term.wait_input("/who")
        term.child.sendintr()
        term.wait_for(lambda: term.eof, "the end of the server")
        term.child.wait()
        assert term.child.exitstatus == 0, term.dump()
        assert term.input_line() is None, term.dump()  # the operator's line is gone
        assert any("server stopping" in line for line in term.lines), term.dump()
    log = log_file.read_text(encoding="utf-8")
    assert "server stopping" in log and "stopped" in log.splitlines()[-1], log


def test_ctrl_d_ends_the_commands_and_the_server_goes_on(tmp_path: Path) -> None:
    with serve_terminal(tmp_path) as term:
        term.type("\x04")
        term.wait_text("No more commands; the server goes on (Ctrl-C stops it).")
        term.member("bob")
        term.wait_text("bob joined from")
        assert term.input_line() is None, term.dump()
        term.child.sendintr()  # the terminal's own Ctrl-C again: SIGINT
        term.wait_for(lambda: term.eof, "the end of the server")
        term.child.wait()
        assert term.child.exitstatus == 0, term.dump()
