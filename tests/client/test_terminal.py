"""End to end in a real pseudo-terminal: `tcpchat join` as a person sees it.

The child is the real command in a pty, drawn on a pyte screen (support/screen.py). The server and
the other member (a raw JSON line client) run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import re
import sys

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support import REPO
from support.chat_pty import PROMPT, ChatPty, chat_pty, exit_status, spawn_chat

from tcpchat.client.ui.render import CONTINUED
from tcpchat.server import moderation

# A real `tcpchat join` in a pty for each test: left out of the fast loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow


def test_incoming_message_appears_above_a_half_typed_line_without_corrupting_it(chat, tmp_path):
    child = spawn_chat(chat.port, tmp_path, "--name", "alice")
    term = ChatPty(child)
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


# How a line the chat screen prints starts: a time, a notice, a problem or a marker.
EVENT_LINE = re.compile(r"\d\d:\d\d |\* |! |── ")
MESSAGE_START = re.compile(r"\d\d:\d\d bob:")
FORGED = "11:12 ← bob left · 2 members online"


@pytest.mark.parametrize("columns", [80, 53])
def test_a_message_padded_to_the_width_cannot_forge_a_line(chat, tmp_path, columns):
    """Every row of a message after its first is marked as its continuation, however it wraps."""
    with chat_pty(chat.port, tmp_path, "--name", "alice", columns=columns) as term:
        bob = chat.join("bob")
        term.wait_text("bob joined")
        first_row = len("11:12 bob: ")
        hostile = [
            "hi" + " " * (columns - first_row - 2) + FORGED,  # spaces to the end of the row
            "x" * (columns - first_row) + FORGED,  # no spaces: a full row wraps all the same
            "a\n" + " " * (columns - 6) + FORGED,  # a second line as long as a row
            "b\n" + FORGED,
        ]
        for n, text in enumerate([*hostile, "done"]):
            bob.send_json({"type": "say", "text": text, "id": str(n)})
        term.wait_text("bob: done")
        print(f"\nHostile messages at {columns} columns:\n" + term.dump())

        rows = term.lines[term.row_of("bob joined") + 1 : term.row_of("bob: done")]
        firsts = [row for row in rows if MESSAGE_START.match(row)]
        assert len(firsts) == len(hostile), term.dump()
        continued = [row for row in rows if not MESSAGE_START.match(row)]
        assert sum("← bob left" in row for row in continued) == len(hostile), term.dump()
        for row in continued:
            assert row.lstrip(" ").startswith(CONTINUED.rstrip()), (row, term.dump())
            assert not row.startswith(CONTINUED.rstrip()), (row, term.dump())  # not at column 0
            assert not EVENT_LINE.match(row), (row, term.dump())


@pytest.mark.parametrize("keys", ["\x12", "\x1b[5~\x12"], ids=["ctrl-r", "pageup-ctrl-r"])
def test_ctrl_c_in_a_search_ends_the_search_and_keeps_the_draft(chat, tmp_path, keys):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        term.type("a draft")
        term.wait_text(PROMPT + "a draft")
        term.type(keys)
        term.wait_text("search")
        print("\nSearching:\n" + term.dump())
        term.type("\x03")
        term.wait_for(lambda: not any("search" in line for line in term.lines), "the search to end")
        term.wait_for(lambda: term.input_line() == PROMPT + "a draft", "the draft again")
        assert term.child.isalive(), term.dump()
        # Ctrl-C then goes on as ever: it clears the draft, and on the empty line leaves.
        term.type("\x03")
        term.wait_for(lambda: term.input_line() == PROMPT.rstrip(), "an empty input line")
        term.type("\x03")
        assert exit_status(term) == 0, term.dump()
        assert "* You left the chat." in term.lines, term.dump()


def test_the_member_count_stays_on_a_40_column_toolbar_online_and_offline(start_server, tmp_path):
    server = start_server()
    with chat_pty(server.port, tmp_path, "--name", "alice", columns=40) as term:
        term.wait_for(lambda: "1 member online" in term.toolbar(), "the count on the toolbar")
        server.join("bob")
        term.wait_for(lambda: "2 members online" in term.toolbar(), "the new count")
        print("\nOnline at 40 columns:\n" + term.dump())
        server.stop()  # bob's connection is closed first: his leave may come in time or not
        term.wait_for(
            lambda: (
                "offline" in term.toolbar() and re.search(r"\d members? online", term.toolbar())
            ),
            "'offline' and the last known count on the toolbar",
        )
        print("\nOffline at 40 columns:\n" + term.dump())


@pytest.mark.parametrize(
    ("removal", "said"),
    [
        (
            "/kick alice flooding",
            "You were removed from the chat by the server's operator: flooding",
        ),
        ("/ban alice", "Your address was banned from this server by its operator."),
        ("idle", "You were idle for"),
    ],
    ids=["kicked", "banned", "timed-out"],
)
def test_removed_by_the_server_exits_1_saying_what_happened(start_server, tmp_path, removal, said):
    server = start_server(idle_timeout=2.0 if removal == "idle" else None)
    with chat_pty(server.port, tmp_path, "--name", "alice") as term:
        if removal.startswith("/"):
            answer = server.call(lambda: moderation.execute(server.server, removal))
            assert "alice" in answer
        status = exit_status(term)
        print(f"\nAfter {removal}:\n" + term.dump())
        assert status == 1, term.dump()
        assert sum(said in line for line in term.lines) == 1, term.dump()
        assert not any("You left the chat" in line for line in term.lines), term.dump()


@pytest.mark.parametrize("key", ["\x03", "\x04", "/quit\r"], ids=["ctrl-c", "ctrl-d", "quit"])
def test_leaving_exits_0_whichever_way_as_the_readme_says(chat, tmp_path, key):
    """Ctrl-C on an empty line is a way to leave, as /quit and Ctrl-D are: done, not interrupted."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    exit_status_section = readme.split("### Exit status", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"Ctrl-C on an empty line[^.]*exits 0", exit_status_section.replace("\n", " "))
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        term.type(key)
        assert exit_status(term) == 0, term.dump()
        assert "* You left the chat." in term.lines, term.dump()


def test_the_operator_is_drawn_with_a_mark_and_a_background_no_member_has(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "I am the server", "id": "1"})
        term.wait_text("bob: I am the server")
        chat.call(lambda: moderation.execute(chat.server, "/say maintenance at noon"))
        term.wait_text("server: maintenance at noon")
        print("\nThe operator and a member:\n" + term.dump())

        def backgrounds(text: str) -> set[str]:
            row = term.row_of(text)
            start = term.lines[row].index(text)
            return {term.screen.buffer[row][x].bg for x in range(start, start + len(text))}

        assert "⚑ server: maintenance" in term.lines[term.row_of("maintenance at noon")]
        assert backgrounds("⚑ server") != {"default"}, term.dump()
        assert backgrounds("bob") == {"default"}, term.dump()
