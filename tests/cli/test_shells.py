"""Tab completion in real bash, zsh and fish, set up exactly as the README tells a new user.

Each test gives the shell a fresh home folder, runs the README's one line for that shell there,
starts the shell interactively in a pseudo-terminal (so it reads its own startup file as a
person's would), types a partial command and Tab, and reads the completed command line off the
screen.  The `tcpchat` the shell finds is the one under test: this environment's script, or a
wrapper that runs this Python.  A shell that is not installed is skipped with the reason shown
(`.ci/run` installs all three with apt-get).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip(
        "bash, zsh and fish completion is tested on POSIX (pexpect needs a pty)",
        allow_module_level=True,
    )

import pexpect
from support import REPO
from support.screen import TIMEOUT, Terminal

from tcpchat.cli.completion import SHELLS

# Real shells in a pty: left out of the fast loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

RECENT_HOST = "chat.example.org"
KILL_LINE = "\x15"  # Ctrl-U: empty the command line in all three shells


def readme_setup_line(shell: str) -> str:
    """The README's one line that turns completion on for `shell`."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [
        line.strip() for line in readme.splitlines() if f"tcpchat completion {shell} >" in line
    ]
    assert len(lines) == 1, f"the README should give exactly one setup line for {shell}: {lines}"
    return lines[0]


def tcpchat_folder(tmp_path: Path) -> Path:
    """A folder holding the `tcpchat` under test, to put first on the shell's PATH."""
    installed = Path(sys.executable).parent / "tcpchat"
    if installed.exists():
        return installed.parent
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "tcpchat"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tcpchat "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return folder


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Terminal]:
    """An interactive shell, set up by the README's line, in a pty, ready for input."""
    name: str = request.param
    program = shutil.which(name)
    if program is None:
        pytest.skip(f"{name} is not installed here (.ci/run installs it with apt-get)")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join(
            [str(tcpchat_folder(tmp_path)), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "SHELL": program,
    }
    # The user's step, run by the shell it is written for.
    subprocess.run(
        [program, "-c", readme_setup_line(name)], env=env, cwd=home, check=True, timeout=4 * TIMEOUT
    )
    # A host joined before, where `tcpchat join` keeps it (click.get_app_dir under this HOME).
    config = home / ".config" / "tcpchat"
    config.mkdir(parents=True, exist_ok=True)
    (config / "recent.json").write_text(json.dumps({"hosts": [RECENT_HOST], "names": ["alice"]}))
    (home / "chatlog-2026.txt").write_text("")

    child = pexpect.spawn(
        program, ["-i"], env=env, cwd=str(home), dimensions=(24, 100), timeout=TIMEOUT
    )
    term = Terminal(child)
    try:
        # Ready once a command runs: the shell has read its startup file.
        term.type("echo tcpchat''ready\r")
        term.wait_for(lambda: "tcpchatready" in term.lines, "the shell running a command")
        yield term
    finally:
        child.close(force=True)


def complete(term: Terminal, typed: str, expected: str) -> None:
    """Type `typed` and Tab; the command line must then read `expected`."""
    term.type(KILL_LINE + typed + "\t")
    pattern = re.compile(rf"(^|\s){re.escape(expected)}(\s|$)")
    term.wait_for(lambda: pattern.search(term.cursor_line()), f"the line completed to {expected!r}")


def test_a_command_name_completes(shell: Terminal) -> None:
    complete(shell, "tcpchat se", "tcpchat serve")


def test_an_option_completes(shell: Terminal) -> None:
    complete(shell, "tcpchat join --n", "tcpchat join --name")


def test_a_recent_host_completes(shell: Terminal) -> None:
    complete(shell, "tcpchat join chat.ex", f"tcpchat join {RECENT_HOST}")


def test_a_file_option_completes_a_path(shell: Terminal) -> None:
    complete(shell, "tcpchat serve --log-file chatl", "tcpchat serve --log-file chatlog-2026.txt")


@pytest.mark.parametrize("name", SHELLS)
def test_the_completion_help_gives_the_readme_line(name: str) -> None:
    """`tcpchat completion --help` and the README tell the same one step."""
    from click.testing import CliRunner

    from tcpchat.cli import main

    result = CliRunner().invoke(main, ["completion", "--help"], prog_name="tcpchat")
    assert result.exit_code == 0
    assert readme_setup_line(name) in result.output
