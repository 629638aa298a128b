"""Less noise in a real pty: joins and leaves hidden, or shown by irssi's smart rule, and the
member count right all the same."""

from __future__ import annotations

import sys

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support.chat import next_of
from support.chat_pty import chat_pty

pytestmark = pytest.mark.slow


def _say(member, text: str, n: int) -> None:
    member.send_json({"type": "say", "text": text, "id": str(n)})
    next_of(member, "ack")


@pytest.mark.parametrize("settings", ["joins = off", "quiet = on"])
def test_joins_and_leaves_hidden_the_count_still_right(chat, tmp_path, settings):
    with chat_pty(chat.port, tmp_path, "--name", "alice", settings=f"[join]\n{settings}\n") as term:
        bob = chat.join("bob")
        carol = chat.join("carol")
        term.wait_for(lambda: "3 members online" in term.toolbar(), "3 members online")
        carol.send_json({"type": "bye"})
        term.wait_for(lambda: "2 members online" in term.toolbar(), "2 members online")
        _say(bob, "still here", 1)
        term.wait_text("bob: still here")
        print(f"\nWith {settings}:\n" + term.dump())
        assert not any("joined" in line or "left" in line for line in term.lines), term.dump()


def test_smart_shows_only_the_leave_of_someone_who_spoke(chat, tmp_path):
    with chat_pty(
        chat.port, tmp_path, "--name", "alice", settings="[join]\njoins = smart\n"
    ) as term:
        bob = chat.join("bob")
        carol = chat.join("carol")
        dave = chat.join("dave")
        term.wait_for(lambda: "4 members online" in term.toolbar(), "4 members online")
        _say(bob, "bye all", 1)
        term.wait_text("bob: bye all")
        bob.send_json({"type": "bye"})
        carol.send_json({"type": "bye"})
        term.wait_text("← bob left")
        _say(dave, "the end", 2)
        term.wait_text("dave: the end")
        print("\nSmart joins:\n" + term.dump())
        screen = "\n".join(term.lines)
        assert "joined" not in screen, term.dump()
        assert "carol" not in screen, term.dump()
        term.wait_for(lambda: "2 members online" in term.toolbar(), "2 members online")
