"""`tcpchat join`'s questions before the chat screen (host, name), in a real pseudo-terminal.

The child is the real command in a pty, drawn on a pyte screen (support/screen.py); the server runs
in this process on 127.0.0.1 (conftest).  The prompts are prompt_toolkit's, so only a terminal
shows what a person sees: the default offered after the question, and what happens on Enter.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

import pexpect
from support import REPO
from support.running import RunningServer
from support.screen import COLUMNS, ROWS, TIMEOUT, Terminal

# A real `tcpchat join` in a pty for each test: left out of the fast loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow


class Prompts(Terminal):
    """The questions `join` asks: `Question [default]: `, or `Question: ` with none to offer."""

    @staticmethod
    def _asks(line: str, question: str) -> bool:
        return line.startswith((f"{question}:", f"{question} ["))

    def answer_offered(self, question: str) -> str:
        """The default in brackets on the screen's last row asking `question` ("" for none)."""
        rows = [line for line in self.lines if self._asks(line, question)]
        assert rows, f"no {question!r} on the screen:\n{self.dump()}"
        asked = rows[-1][len(question) :]
        return asked[2 : asked.index("]:")] if asked.startswith(" [") else ""

    def wait_question(self, question: str, count: int = 1) -> None:
        """Wait until `question` has been asked `count` times and the cursor is on the last."""
        self.wait_for(
            lambda: (
                sum(self._asks(line, question) for line in self.lines) >= count
                and self._asks(self.cursor_line(), question)
            ),
            f"{question!r} asked {count} times",
        )


@pytest.fixture
def join_in_terminal(tmp_path: Path) -> Iterator[Callable[..., Prompts]]:
    """Start `tcpchat join ARGS...` in a pty, with these recent names and login name; each is
    killed when the test ends."""
    started: list[Prompts] = []

    def start(*args: str, recent_names: tuple[str, ...] = (), login: str = "alice") -> Prompts:
        config = tmp_path / "config"
        config.mkdir(exist_ok=True)
        recent = {"hosts": [], "names": list(recent_names)}
        (config / "recent.json").write_text(json.dumps(recent), encoding="utf-8")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TCPCHAT_", "_TCPCHAT")) and key not in ("COLUMNS", "LINES")
        }
        # getpass.getuser() reads these first: the login name is the last default offered.
        env.update(TERM="xterm-256color", TCPCHAT_CONFIG_DIR=str(config), LOGNAME=login, USER=login)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "tcpchat", "join", *args],
            env=env,
            cwd=str(REPO),
            dimensions=(ROWS, COLUMNS),
            timeout=TIMEOUT,
        )
        started.append(Prompts(child))
        return started[-1]

    yield start
    for term in started:
        if term.child.isalive():
            term.child.kill(9)
            term.child.wait()
        term.child.close(force=True)


def leave(term: Prompts) -> None:
    """Ctrl-D on the chat screen: the program ends with 0."""
    term.type("\x04")
    term.wait_for(lambda: term.eof, "the end of the program after Ctrl-D")
    term.child.wait()
    assert term.child.exitstatus == 0, term.dump()


# --- the name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recent_names", "offered_next"),
    [(("alice", "bob"), "bob"), ((), "")],
    ids=["another recent name", "nothing left to offer"],
)
def test_a_refused_name_is_not_offered_again(
    chat: RunningServer,
    join_in_terminal: Callable[..., Prompts],
    recent_names: tuple[str, ...],
    offered_next: str,
) -> None:
    chat.join("alice")
    term = join_in_terminal("127.0.0.1", "--port", str(chat.port), recent_names=recent_names)
    term.wait_question("Your name")
    assert term.answer_offered("Your name") == "alice", term.dump()
    term.type("\r")  # take the offer: alice, which is taken
    term.wait_question("Your name", count=2)
    assert "taken" in "\n".join(term.lines), term.dump()
    assert term.answer_offered("Your name") == offered_next, term.dump()
    # Another refusal (this time of a name typed) is not offered either.
    term.type("\x15ALICE\r")  # Ctrl-U clears the offer; the same name in other letters
    term.wait_question("Your name", count=3)
    assert term.answer_offered("Your name") == offered_next, term.dump()
    term.type("\x15carol\r")
    term.wait_text("2 members online")
    leave(term)


# --- the host -----------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port with nothing listening (bound, read, closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_bad_host_is_asked_for_again_with_the_reason(
    chat: RunningServer, join_in_terminal: Callable[..., Prompts], tmp_path: Path
) -> None:
    term = join_in_terminal("--name", "carol")
    term.wait_question("Server host")
    assert term.answer_offered("Server host") == "127.0.0.1", term.dump()

    term.type("\x15127.0.0.1:http\r")  # not a port
    term.wait_question("Server host", count=2)
    assert "'http' is not a port" in "\n".join(term.lines), term.dump()
    assert term.answer_offered("Server host") == "127.0.0.1", term.dump()

    nobody = closed_port()
    term.type(f"\x15127.0.0.1:{nobody}\r")  # nothing listens there
    term.wait_question("Server host", count=3)
    assert f"refused the connection on port {nobody}" in "\n".join(term.lines), term.dump()

    term.type(f"\x15127.0.0.1:{chat.port}\r")
    term.wait_text("1 member online")
    leave(term)
    # Offered next time (and completed by the shell) with its port, which join now takes.
    recent = json.loads((tmp_path / "config" / "recent.json").read_text(encoding="utf-8"))
    assert recent["hosts"][0] == f"127.0.0.1:{chat.port}"


def test_what_is_typed_replaces_the_default_and_enter_alone_takes_it(
    chat: RunningServer, join_in_terminal: Callable[..., Prompts]
) -> None:
    """The default is offered in brackets, not typed in: a person who types a host gets that
    host, not the default with it added on."""
    term = join_in_terminal(recent_names=("carol",))
    term.wait_question("Server host")
    assert term.answer_offered("Server host") == "127.0.0.1", term.dump()
    term.type(f"127.0.0.1:{chat.port}\r")
    term.wait_question("Your name")
    assert term.answer_offered("Your name") == "carol", term.dump()
    term.type("\r")
    term.wait_text("1 member online")
    assert chat.call(lambda: chat.server.lobby.sorted_names()) == ["carol"]  # type: ignore[union-attr]
    leave(term)
