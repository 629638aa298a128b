"""The commands people type without thinking, in a real pseudo-terminal: `/quit MESSAGE`, `/r`,
`/ignore`, `/away` and `/back`, `/clear`.

As test_terminal.py: the real `tcpchat join` in a pty drawn on a pyte screen; the server and the
other members (raw JSON line clients) run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import sys

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support.chat import next_of
from support.chat_pty import PROMPT, chat_pty, exit_status

pytestmark = pytest.mark.slow


def test_quit_with_a_message_says_it_to_the_room_then_leaves(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        term.type("/quit see you tomorrow\r")
        message = next_of(bob, "message")
        assert (message["from"], message["text"]) == ("alice", "see you tomorrow"), message
        left = next_of(bob, "left")
        assert (left["name"], left["reason"]) == ("alice", "quit"), left
        assert exit_status(term) == 0, term.dump()
        assert "* You left the chat." in term.lines, term.dump()


def test_r_replies_privately_to_whoever_wrote_privately_last(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        term.type("/r anyone?\r")
        term.wait_text("nobody wrote to you privately yet")
        bob = chat.join("bob")
        carol = chat.join("carol")
        bob.send_json({"type": "dm", "to": "alice", "text": "psst", "id": "1"})
        term.wait_text("bob (private): psst")
        carol.send_json({"type": "dm", "to": "alice", "text": "me too", "id": "1"})
        term.wait_text("carol (private): me too")
        term.type("/r hello carol\r")
        private = next_of(carol, "private")
        assert (private["from"], private["text"]) == ("alice", "hello carol"), private
        term.wait_text("→ carol (private): hello carol")


def test_ignore_hides_a_name_until_unignore(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        carol = chat.join("carol")
        term.type("/ignore\r")
        term.wait_text("You ignore nobody")
        term.type("/ignore BOB\r")
        term.wait_text("Ignoring bob")
        bob.send_json({"type": "say", "text": "can you hear me", "id": "1"})
        bob.send_json({"type": "dm", "to": "alice", "text": "privately?", "id": "2"})
        assert [next_of(bob, "ack")["id"] for _ in range(2)] == ["1", "2"]  # sent before carol
        carol.send_json({"type": "say", "text": "carol speaks", "id": "1"})
        term.wait_text("carol: carol speaks")
        screen = "\n".join(term.lines)
        assert "can you hear me" not in screen and "privately?" not in screen, term.dump()
        term.type("/ignore\r")
        term.wait_text("You ignore bob; /unignore NAME shows them again.")
        term.type("/unignore bob\r")
        term.wait_text("bob's messages show again.")
        bob.send_json({"type": "say", "text": "now?", "id": "3"})
        term.wait_text("bob: now?")


def test_away_answers_private_messages_once_and_back_sums_up(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        term.type("/away at lunch\r")
        term.wait_text("You are away; private messages are answered once each with “at lunch”")
        term.wait_for(lambda: (term.input_line() or "").endswith("away"), "away beside the input")
        bob.send_json({"type": "dm", "to": "alice", "text": "are you there?", "id": "1"})
        reply = next_of(bob, "private")
        assert reply["text"] == "(auto-reply) away: at lunch", reply
        bob.send_json({"type": "dm", "to": "alice", "text": "hello?", "id": "2"})
        bob.send_json({"type": "say", "text": "alice: ping", "id": "3"})
        bob.send_json({"type": "say", "text": "just chatting", "id": "4"})
        term.wait_text("bob: just chatting")
        term.type("/back\r")
        term.wait_for(
            lambda: (
                any("── back after" in line for line in term.lines)
                and term.input_line() is not None
            ),
            "the summary, and the input line under it",
        )
        summary = next(line for line in term.lines if "── back after" in line)
        assert "2 messages, 1 mention of you, 2 private messages" in summary, term.dump()
        kept = term.lines[term.row_of("── back after") :]
        assert any("bob (private): hello?" in line for line in kept), term.dump()
        assert any("bob: alice: ping" in line for line in kept), term.dump()
        assert not any("just chatting" in line for line in kept), term.dump()
        # Only one answer for bob: the next private event he gets is alice's own words.
        term.type("/msg bob back now\r")
        assert next_of(bob, "private")["text"] == "back now"


def test_clear_empties_the_screen_and_keeps_the_input_line(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "something on the screen", "id": "1"})
        term.wait_text("bob: something on the screen")
        term.type("/clear\r")
        term.wait_for(
            lambda: (
                not any("something on the screen" in line for line in term.lines)
                and term.input_line() == PROMPT.rstrip()
            ),
            "an empty screen with the input line",
        )
        assert term.input_row() == 0, term.dump()


def test_away_counts_as_away_for_the_marker_and_the_title_until_back(chat, tmp_path):
    """The terminal keeps its focus and keys are pressed: /away still marks and counts."""
    title = "tcpchat — testserver"
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        term.type("/away\r")
        term.wait_text("You are away.")
        term.type("a draft")
        term.wait_text(PROMPT + "a draft")
        bob.send_json({"type": "say", "text": "while away", "id": "1"})
        term.wait_text("bob: while away")
        term.wait_for(lambda: term.title == f"(1) {title}", f"(1) in the title: {term.title!r}")
        assert term.row_of("── new messages ──") < term.row_of("bob: while away"), term.dump()
        term.type("\x15/back\r")  # Ctrl-U: the draft goes, /back is typed
        term.wait_text("Back after")
        term.wait_for(lambda: term.title == title, f"the title without a count: {term.title!r}")
        bob.send_json({"type": "say", "text": "after back", "id": "2"})
        term.wait_text("bob: after back")
        assert term.title == title, term.dump()
        assert sum("── new messages ──" in line for line in term.lines) == 1, term.dump()
