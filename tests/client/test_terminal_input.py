"""The input line in a real pseudo-terminal: Tab that cycles, a Ctrl-R search left with Escape,
a paste without bracketed paste, long messages split, the count near the limit.

As test_terminal.py: the real `tcpchat join` in a pty drawn on a pyte screen; the server and the
other members (raw JSON line clients) run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import sys

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support.chat import next_of
from support.chat_pty import PROMPT, chat_pty

pytestmark = pytest.mark.slow


def test_tab_inserts_the_first_name_at_once_and_cycles_through_the_others(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        chat.join("bob")
        chat.join("bea")
        term.wait_text("bea joined")
        term.type("b\t")
        term.wait_for(lambda: term.input_line() == PROMPT + "bea:", "bea: at once")
        term.type("\t")
        term.wait_for(lambda: term.input_line() == PROMPT + "bob:", "bob: on the next Tab")
        term.type("\x1b[Z")  # Shift-Tab goes back
        term.wait_for(lambda: term.input_line() == PROMPT + "bea:", "bea: again")
        term.type("\x15hi b\t")  # Ctrl-U, then a name inside the line
        term.wait_for(lambda: term.input_line() == PROMPT + "hi bea", "a name inside the line")
        term.type("\tthere")
        term.wait_for(
            lambda: term.input_line() == PROMPT + "hi bob there", "the next name, and a space"
        )


def test_escape_cancels_a_ctrl_r_search_and_gives_the_draft_back(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        term.type("first line\r")
        term.wait_text("✓ delivered to 0")
        term.type("a draft")
        term.wait_text(PROMPT + "a draft")
        term.type("\x12fir")
        term.wait_text("first line")
        term.wait_for(lambda: any("search" in line for line in term.lines), "the search")
        term.type("\x1b")
        term.wait_for(lambda: term.input_line() == PROMPT + "a draft", "the draft again")
        assert not any("search" in line for line in term.lines), term.dump()
        assert term.child.isalive(), term.dump()
        term.type("\r")
        term.wait_text("alice: a draft")


def test_a_paste_without_bracketed_paste_waits_in_the_input_as_one_message(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        term.type("one\rtwo\rthree\r")  # as a terminal without bracketed paste sends a paste
        term.wait_text("3 pasted lines wait in the input line")
        print("\nA paste of three lines:\n" + term.dump())
        term.type("\r")
        message = next_of(bob, "message")
        assert message["text"] == "one\ntwo\nthree", message  # one message, and the first
        term.wait_text("✓ delivered to 1")


def test_a_message_over_the_limit_goes_as_pieces_broken_between_words(start_server, tmp_path):
    server = start_server(max_text=40)
    with chat_pty(server.port, tmp_path, "--name", "alice") as term:
        bob = server.join("bob")
        term.wait_text("bob joined")
        words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod"
        term.type(words)
        term.wait_for(lambda: "69/40 → 2 messages" in (term.input_line() or ""), "the count")
        term.type("\r")
        texts = [next_of(bob, "message")["text"] for _ in range(2)]
        assert " ".join(texts) == words, texts
        assert all(len(text) <= 40 for text in texts), texts
        term.wait_text("Sent as 2 messages: the server takes 40 characters at most.")


def test_the_count_shows_near_the_limit_beside_the_input_line(start_server, tmp_path):
    server = start_server(max_text=40)
    with chat_pty(server.port, tmp_path, "--name", "alice") as term:
        term.type("x" * 35)
        term.wait_for(lambda: term.input_line() is not None, "the input line")
        assert "/40" not in (term.input_line() or ""), term.dump()
        term.type("x")
        term.wait_for(lambda: (term.input_line() or "").endswith("36/40"), "36/40 beside the input")
        print("\nNear the limit:\n" + term.dump())


def test_a_message_of_many_pieces_is_asked_about_and_sent_on_a_second_enter(start_server, tmp_path):
    server = start_server(max_text=40)
    with chat_pty(server.port, tmp_path, "--name", "alice") as term:
        bob = server.join("bob")
        term.wait_text("bob joined")
        text = " ".join(
            f"word{n:03}" for n in range(40)
        )  # 319 characters: 8 messages of five words
        term.type(text + "\r")
        term.wait_text("That is 8 messages of 40 characters at most: Enter again sends them all")
        term.wait_for(lambda: (term.input_line() or "").startswith(PROMPT + "word000"), "kept")
        print("\nAsked before sending 8 messages:\n" + term.dump())
        term.type("\r")
        texts = [next_of(bob, "message")["text"] for _ in range(8)]
        assert " ".join(texts) == text, texts
