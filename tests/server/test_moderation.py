"""The operator's console commands: /who, /say, /kick, /ban, /unban, /bans, /help.

Most tests run a command in the server's own loop (as the console thread does) against a real
server on 127.0.0.1 and watch its members over real sockets; the last ones type the commands into
a real `tcpchat serve` process's standard input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import TIMEOUT
from support.chat import expect_closed, join, say, sync
from support.process import Process, clean_env, free_port
from support.running import RunningServer
from support.wire import LineClient

from tcpchat.server import moderation


def run(server: RunningServer, line: str) -> str:
    """A console line, carried out in the server's loop; the operator's answer."""
    assert server.server is not None
    return server.call(lambda: moderation.execute(server.server, line))


def test_say_sends_a_message_from_server_in_seq_order(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    bob, _ = join(chat, "bob")
    alice.expect("joined")
    bob.send_json(say("first", "1"))
    assert bob.expect("ack")["seq"] == 1
    assert run(chat, "/say Maintenance at noon.") == "Sent to 2 members."
    assert alice.expect("message")["seq"] == 1
    message = alice.expect("message")
    assert (message["seq"], message["from"], message["text"]) == (
        2,
        "server",
        "Maintenance at noon.",
    )
    assert bob.expect("message")["from"] == "server"
    _, welcome = join(chat, "carol")
    assert [m["from"] for m in welcome["history"]] == ["bob", "server"]


def test_say_refuses_what_a_member_could_not_send(chat: RunningServer) -> None:
    assert run(chat, "/say " + "x" * 1025).startswith("Not sent: message too long")
    assert run(chat, "/say   ") == "Not sent: A message needs some text that is not only spaces."


def test_kick_removes_a_member_with_the_reason(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    bob, _ = join(chat, "bob")
    alice.expect("joined")
    assert run(chat, "/kick BOB spamming links") == "Removed bob."
    left = alice.expect("left")
    assert (left["name"], left["members"], left["reason"]) == ("bob", 1, "kicked")
    lines = expect_closed(bob)
    last = json.loads(lines[-1])
    assert last == {
        "type": "shutdown",
        "message": "You were removed from the chat by the server's operator: spamming links",
        "reason": "kicked",
    }
    join(chat, "bob")  # a kick is not a ban
    assert alice.expect("joined")["name"] == "bob"


def test_kick_of_a_plain_member_says_why_in_a_line(chat: RunningServer) -> None:
    dave = chat.join_plain("dave")
    assert run(chat, "/kick dave") == "Removed dave."
    lines = expect_closed(dave)
    assert lines[-1] == "! You were removed from the chat by the server's operator."


def test_a_kicked_connection_is_let_go_once_its_peer_closes(chat: RunningServer) -> None:
    bob, _ = join(chat, "bob")
    run(chat, "/kick bob")
    expect_closed(bob)
    bob.close()
    ends = time.monotonic() + TIMEOUT
    while chat.call(lambda: len(chat.server.connections)):
        assert time.monotonic() < ends, "the kicked connection was never let go"


def test_ban_by_name_removes_every_connection_from_the_address_and_refuses_new_ones(
    chat: RunningServer,
) -> None:
    bob, _ = join(chat, "bob")
    stranger = chat.connect()
    stranger.read_line()  # a connection that has not joined yet, from the same address
    assert run(chat, "/ban bob 5") == "Banned 127.0.0.1 for 5 minutes; removed bob."
    assert json.loads(expect_closed(bob)[-1])["type"] == "shutdown"
    assert (
        expect_closed(stranger)[-1] == "! Your address was banned from this server by its operator."
    )
    refused = chat.connect()
    assert expect_closed(refused) == [
        "! Your address is banned from this server for 5 more minutes."
    ]
    assert run(chat, "/bans") == "  127.0.0.1  5 minutes left"
    assert run(chat, "/unban 127.0.0.1") == "Lifted the ban on 127.0.0.1."
    join(chat, "bob")
    assert run(chat, "/bans") == "No bans."


def test_a_short_ban_says_its_seconds(chat: RunningServer) -> None:
    assert run(chat, "/ban 127.0.0.1 0.05") == "Banned 127.0.0.1 for 3 seconds."


def test_ban_by_address_lasts_until_restart(chat: RunningServer) -> None:
    assert run(chat, "/ban 127.0.0.1") == "Banned 127.0.0.1 until the server restarts."
    assert expect_closed(chat.connect()) == ["! Your address is banned from this server."]


def test_who_lists_members_with_their_addresses(chat: RunningServer) -> None:
    assert run(chat, "/who") == "Nobody is here."
    join(chat, "bob")
    join(chat, "alice")
    answer = run(chat, "/who").splitlines()
    assert answer[0] == "2 members online:"
    assert answer[1].split()[0] == "alice" and answer[1].split()[1].startswith("127.0.0.1:")
    assert answer[2].split()[0] == "bob"


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("", ""),
        ("hello everyone", "To talk to everyone type /say TEXT; /help lists the commands."),
        ("/frobnicate", "Unknown command /frobnicate; /help lists the commands."),
        ("/kick", "Usage: /kick NAME [REASON]"),
        ("/kick nobody", "Nobody called 'nobody' is here."),
        ("/ban", "Usage: /ban NAME|ADDRESS [MINUTES]"),
        ("/ban nobody", "'nobody' is neither a member's name nor an IP address."),
        (
            "/ban 127.0.0.1 soon",
            "Minutes must be a number above 0 and at most 5,256,000, not 'soon'.",
        ),
        ("/ban 127.0.0.1 -5", "Minutes must be a number above 0 and at most 5,256,000, not '-5'."),
        (
            "/ban 127.0.0.1 1e308",
            "Minutes must be a number above 0 and at most 5,256,000, not '1e308'.",
        ),
        (
            "/kick alice \x1b]0;pwned\x07",
            "Not removed: the reason is refused (A message may not hold the control character U+001B.)",
        ),
        (
            "/ban 127.0.0.1 nan",
            "Minutes must be a number above 0 and at most 5,256,000, not 'nan'.",
        ),
        ("/unban", "Usage: /unban ADDRESS"),
        ("/unban 192.0.2.1", "192.0.2.1 is not banned."),
        ("/bans", "No bans."),
    ],
)
def test_mistyped_commands_get_one_answer_and_change_nothing(
    chat: RunningServer, line: str, answer: str
) -> None:
    alice, _ = join(chat, "alice")
    assert run(chat, line) == answer
    sync(alice)


def test_help_lists_every_command(chat: RunningServer) -> None:
    text = run(chat, "/help")
    for command in ("/who", "/say", "/kick", "/ban", "/unban", "/bans", "/help"):
        assert command in text


# --- typed into a real `tcpchat serve` ----------------------------------------------------------


def test_commands_typed_into_the_server_console(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path)
    process = Process(
        [sys.executable, "-m", "tcpchat", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        stdin=subprocess.PIPE,
    )
    try:
        process.wait_for_line(lambda line: "Press Ctrl-C to stop." in line)
        alice = LineClient("127.0.0.1", port, TIMEOUT)
        alice.read_line()
        alice.send_json({"type": "hello", "name": "alice", "version": 1})
        alice.expect("welcome")
        process.type("/say Welcome, everyone!\n")
        message = alice.expect("message")
        assert (message["from"], message["text"]) == ("server", "Welcome, everyone!")
        process.wait_for_line(lambda line: line == "Sent to 1 member.")
        process.type("/kick alice\n")
        process.wait_for_line(lambda line: line == "Removed alice.")
        assert json.loads(expect_closed(alice)[-1])["type"] == "shutdown"
        process.close_stdin()  # the end of the console's input does not stop the server
        bob = LineClient("127.0.0.1", port, TIMEOUT)
        bob.read_line()
        bob.send_json({"type": "hello", "name": "bob", "version": 1})
        bob.expect("welcome")
        bob.close()
        alice.close()
    finally:
        process.stop()
