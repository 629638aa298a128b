"""Not missing anything, in a real pty: the terminal's focus reports (CSI ? 1004 h) drive a
"new messages" line where you left off, an unread count in the window's title, and desktop
notifications (OSC 777 / OSC 9) of mentions and private messages; idleness does, where the
terminal reports no focus; each is switchable."""

from __future__ import annotations

import sys
import time

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support.chat import next_of
from support.chat_pty import FOCUS_IN, FOCUS_OUT, PROMPT, ChatPty, chat_pty

pytestmark = pytest.mark.slow

MARKER = "── new messages ──"
TITLE = "tcpchat — testserver"


def _say(member, text: str, n: int) -> None:
    member.send_json({"type": "say", "text": text, "id": str(n)})
    next_of(member, "ack")


def _private(member, text: str, n: int) -> None:
    member.send_json({"type": "dm", "to": "alice", "text": text, "id": str(n)})
    next_of(member, "ack")


def _title(term: ChatPty, title: str) -> None:
    term.wait_for(lambda: term.title == title, f"the title {title!r} (it is {term.title!r})")


def test_focus_lost_then_regained_marks_where_you_left_off_and_counts_in_the_title(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        _say(bob, "seen", 1)
        term.wait_text("bob: seen")
        _title(term, TITLE)
        term.type("draft")
        term.wait_text(PROMPT + "draft")
        term.type(FOCUS_OUT)
        _say(bob, "unseen one", 2)
        _say(bob, "unseen two", 3)
        term.wait_text("bob: unseen two")
        _title(term, f"(2) {TITLE}")
        print("\nAway:\n" + term.dump())
        assert term.row_of("bob: seen") < term.row_of(MARKER) < term.row_of("bob: unseen one")
        term.type(FOCUS_IN)
        _title(term, TITLE)
        # The focus reports are not typed into the input line.
        term.wait_for(lambda: term.input_line() == PROMPT + "draft", "the draft as it was")
        _say(bob, "seen again", 4)
        term.wait_text("bob: seen again")
        assert sum(MARKER in line for line in term.lines) == 1, term.dump()
        assert term.title == TITLE


def test_without_focus_reports_being_idle_counts_as_away(chat, tmp_path):
    settings = "[join]\naway_after = 0.02\n"  # 1.2 seconds
    with chat_pty(chat.port, tmp_path, "--name", "alice", settings=settings) as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        term.type("x")  # a key: here again
        idle_from = time.monotonic()
        _say(bob, "while typing", 1)
        term.wait_text("bob: while typing")
        assert not any(MARKER in line for line in term.lines), term.dump()
        term.wait_for(lambda: time.monotonic() - idle_from > 1.5, "1.5 s without a key")
        _say(bob, "while idle", 2)
        term.wait_text("bob: while idle")
        assert term.row_of("bob: while typing") < term.row_of(MARKER), term.dump()
        assert term.row_of(MARKER) < term.row_of("bob: while idle"), term.dump()
        _title(term, f"(1) {TITLE}")
        term.type("y")
        _title(term, TITLE)


@pytest.mark.parametrize(
    ("settings", "env", "osc", "expected"),
    [
        ("notify = osc777", {}, "777", f"notify;{TITLE};bob: alice, look"),
        ("", {"TERM_PROGRAM": "iTerm.app"}, "9", "bob: alice, look"),
    ],
    ids=["osc777", "auto-iterm2-osc9"],
)
def test_a_mention_or_a_private_message_while_away_notifies_and_rings(
    chat, tmp_path, settings, env, osc, expected
):
    with chat_pty(
        chat.port, tmp_path, "--name", "alice", env=env, settings=f"[join]\n{settings}\n"
    ) as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        _say(bob, "alice, here", 1)  # looking: the bell only
        term.wait_text("bob: alice, here")
        term.wait_for(lambda: term.bells == 1, "one bell")
        term.type(FOCUS_OUT)
        _say(bob, "nothing for you", 2)
        _say(bob, "alice, look", 3)
        _private(bob, "psst", 4)
        term.wait_text("bob (private): psst")
        term.wait_for(lambda: len(term.osc(osc)) == 2, "two notifications")
        print(f"\nNotifications: {term.osc(osc)}")
        assert term.osc(osc)[0] == expected
        assert term.osc(osc)[1].endswith("bob (private): psst")
        assert term.bells == 3


def test_all_of_it_can_be_switched_off(chat, tmp_path):
    settings = "[join]\nbell = off\nnotify = osc777\ntitle = off\nmarker = off\n"
    with chat_pty(chat.port, tmp_path, "--name", "alice", settings=settings) as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        term.type(FOCUS_OUT)
        _say(bob, "alice, look", 1)
        term.type("/set notify off\r")
        term.wait_text("notify = off for this session")
        _private(bob, "psst", 2)
        term.wait_text("bob (private): psst")
        assert len(term.osc("777")) == 1, term.osc("777")
        assert term.bells == 0
        assert "tcpchat" not in term.title
        assert not any(MARKER in line for line in term.lines), term.dump()


def test_quiet_counts_only_mentions_and_private_messages_in_the_title(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice", settings="[join]\nquiet = on\n") as term:
        bob = chat.join("bob")
        _say(bob, "hello all", 1)
        term.wait_text("bob: hello all")
        term.type(FOCUS_OUT)
        _say(bob, "chatter", 2)
        _say(bob, "more chatter", 3)
        _say(bob, "alice?", 4)
        term.wait_text("bob: alice?")
        _title(term, f"(1) {TITLE}")
