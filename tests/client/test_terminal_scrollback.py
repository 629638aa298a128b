"""Reading back in a real pseudo-terminal: PageUp's scrollback view with its search, and the
session's own log (`--log FILE`).

As test_terminal.py: the real `tcpchat join` in a pty drawn on a pyte screen; the server and the
other members (raw JSON line clients) run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

import pexpect
from support import REPO, TIMEOUT
from support.chat import next_of
from support.chat_pty import PROMPT, ChatPty, chat_pty, exit_status

pytestmark = pytest.mark.slow

PAGE_UP, PAGE_DOWN = "\x1b[5~", "\x1b[6~"


def in_view(term: ChatPty) -> bool:
    return any("scrollback:" in line for line in term.lines)


def test_page_up_reads_back_and_searches_and_the_draft_waits(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        for n in range(1, 61):
            bob.send_json({"type": "say", "text": f"line {n} of bob's story", "id": str(n)})
        term.wait_text("bob: line 60 of bob's story")
        assert not any("line 1 of" in line for line in term.lines), term.dump()
        term.type("my draft")
        term.wait_text(PROMPT + "my draft")

        term.type(PAGE_UP)
        term.wait_for(lambda: in_view(term), "the scrollback view")
        term.wait_text("bob: line 20 of")  # a page back: lines that had scrolled off the screen
        assert not any("line 60 of" in line for line in term.lines), term.dump()
        assert not any(line.startswith(PROMPT.rstrip()) for line in term.lines), term.dump()
        print("\nOne page back:\n" + term.dump())

        term.type("/line 7 of\r")  # the newest line holding it, back from here
        term.wait_for(lambda: "“line 7 of”" in term.lines[-1], "the search said on the status")
        row = term.row_of("bob: line 7 of")
        assert term.screen.buffer[row][0].reverse, term.dump()
        term.type("n")  # further back: none holds it
        term.wait_text("not found further back")

        bob.send_json({"type": "say", "text": "said while reading back", "id": "61"})
        term.type("G")  # the newest: what came meanwhile is there
        term.wait_text("bob: said while reading back")

        term.type("q")
        term.wait_for(lambda: not in_view(term), "the chat again")
        term.wait_for(lambda: term.input_line() == PROMPT + "my draft", "the draft, kept")
        term.wait_for(  # printed in the chat too, once back, just above the input line
            lambda: (
                term.input_line() == PROMPT + "my draft"
                and "bob: said while reading back" in term.lines[term.input_row() - 1]
            ),
            "bob's line in the chat",
        )
        term.type(PAGE_UP)
        term.wait_for(lambda: in_view(term), "the scrollback view again")
        term.type(PAGE_DOWN * 3)  # past the end: back to the chat
        term.wait_for(lambda: not in_view(term), "the chat after PageDown past the end")
        term.wait_for(lambda: term.input_line() == PROMPT + "my draft", "the draft again")
        term.type(PAGE_UP)
        term.wait_for(lambda: in_view(term), "the scrollback view once more")
        term.type("\x12story")  # Ctrl-R: the view's search line
        term.wait_text("search back: story")
        term.type("\x1b")  # Escape ends the search only
        term.wait_for(lambda: not any("search back:" in line for line in term.lines), "no search")
        assert in_view(term), term.dump()
        term.type("\x1b")  # and then the view
        term.wait_for(lambda: term.input_line() == PROMPT + "my draft", "the draft after Escape")
        term.type("\r")
        assert next_of(bob, "message")["text"] == "my draft"


def test_log_keeps_the_session_as_shown(chat, tmp_path):
    log = tmp_path / "chat.log"
    log.write_text("an earlier session\n", encoding="utf-8")
    with chat_pty(chat.port, tmp_path, "--name", "alice", "--log", str(log)) as term:
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "two lines\nin one message", "id": "1"})
        term.wait_text("bob: two lines")
        term.type("hello bob\r")
        term.wait_text("✓ delivered to 1")
        term.type("/quit\r")
        assert exit_status(term) == 0, term.dump()
    lines = log.read_text(encoding="utf-8").splitlines()
    print("\nThe log:\n" + "\n".join(lines))
    assert lines[0] == "an earlier session"  # appended to, never truncated
    assert re.fullmatch(
        r"--- Log opened \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} \(alice on .+\)", lines[1]
    )
    assert lines[2].startswith("* Welcome to testserver, alice!")
    assert any(re.fullmatch(r"\d\d:\d\d bob: two lines", line) for line in lines), lines
    assert "    ¦ in one message" in lines, lines
    assert any(
        re.fullmatch(r"\d\d:\d\d alice: hello bob  ✓ delivered to 1", line) for line in lines
    )
    assert lines[-2] == "* You left the chat."
    assert lines[-1].startswith("--- Log closed ")


def test_a_log_that_cannot_be_written_is_said_before_anything_starts(chat, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TCPCHAT_")}
    env["TCPCHAT_CONFIG_DIR"] = str(tmp_path)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tcpchat", "join", "127.0.0.1", "--port", str(chat.port), "--name", "alice",
         "--log", str(tmp_path / "no-such-folder" / "chat.log")],
        env=env, cwd=str(REPO), timeout=TIMEOUT,
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.wait()
    said = child.before.decode()
    assert "Error: cannot write the log" in said and "No such file or directory." in said, said
    assert "Traceback" not in said and child.exitstatus == 1, said


def test_the_settings_file_can_keep_the_log_in_the_home_folder(chat, tmp_path):
    settings = "[join]\nlog = ~/chat.log\n"
    env = {"HOME": str(tmp_path)}
    with chat_pty(chat.port, tmp_path, "--name", "alice", env=env, settings=settings) as term:
        term.type("/quit\r")
        assert exit_status(term) == 0, term.dump()
    lines = (tmp_path / "chat.log").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("--- Log opened") and lines[-1].startswith("--- Log closed"), lines


def test_the_view_shows_names_in_the_chat_s_colours(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:  # a 256-colour terminal
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "in colour", "id": "1"})
        term.wait_text("bob: in colour")

        def colour() -> str:
            row = term.row_of("bob: in colour")
            return str(term.screen.buffer[row][term.lines[row].index("bob")].fg)

        in_chat = colour()
        term.type(PAGE_UP)
        term.wait_for(lambda: in_view(term), "the scrollback view")
        term.wait_text("bob: in colour")
        assert colour() == in_chat, term.dump()
        assert in_chat != "default", term.dump()
