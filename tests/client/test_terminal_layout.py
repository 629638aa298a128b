"""The chat screen's layout in a real pty: wrapped lines indented under their text, a bottom bar
that keeps the name and the count at any width, more than 8 name colours where the terminal has
them, and a line where the day changes."""

from __future__ import annotations

import re
import sys
import time

import pytest

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support.chat import next_of
from support.chat_pty import ChatPty, chat_pty

pytestmark = pytest.mark.slow

WORDS = " ".join(f"word{n}" for n in range(40))


def _continued_rows(term: ChatPty, first: str, end: str) -> list[str]:
    rows = term.lines[term.row_of(first) + 1 : term.row_of(end)]
    assert rows, term.dump()
    return rows


@pytest.mark.parametrize(
    ("options", "start"),
    [((), "bob: "), (("--time-format", "HH:MM:SS"), "bob: "), ((), "bob (private): ")],
    ids=["minutes", "seconds", "private"],
)
def test_wrapped_lines_are_indented_under_the_text(chat, tmp_path, options, start):
    with chat_pty(chat.port, tmp_path, "--name", "alice", *options, columns=60) as term:
        bob = chat.join("bob")
        if "private" in start:
            bob.send_json({"type": "dm", "to": "alice", "text": WORDS, "id": "1"})
        else:
            bob.send_json({"type": "say", "text": WORDS, "id": "1"})
        bob.send_json({"type": "say", "text": "end", "id": "2"})
        term.wait_text("bob: end")
        print("\nA wrapped message:\n" + term.dump())
        first = term.lines[term.row_of("word0")]
        column = first.index(start) + len(start)  # where the text starts
        assert first[column:].startswith("word0"), term.dump()
        for row in _continued_rows(term, "word0", "bob: end"):
            assert row[: column - 2] == " " * (column - 2), (row, term.dump())
            assert row[column - 2 : column] == "¦ ", (row, term.dump())
            assert row[column:].startswith("word"), (row, term.dump())


@pytest.mark.parametrize("name", ["alice", "alexandra-the-great"])
def test_a_40_column_bar_keeps_the_name_and_the_count_online_and_offline(
    start_server, tmp_path, name
):
    server = start_server()
    with chat_pty(server.port, tmp_path, "--name", name, columns=40) as term:
        server.join("bob")
        term.wait_for(lambda: "2 members online" in term.toolbar(), "the count on the bar")
        print("\nOnline at 40 columns:\n" + term.dump())
        shown = name if len(name) < 12 else name[:8]
        assert shown in term.toolbar(), term.dump()
        server.stop()
        term.wait_for(
            lambda: (
                "offline" in term.toolbar() and re.search(r"\d members? online", term.toolbar())
            ),
            "offline and the last known count",
        )
        print("\nOffline at 40 columns:\n" + term.dump())
        assert shown in term.toolbar(), term.dump()
        assert len(term.toolbar()) <= 40


NAMES = [f"member{n}" for n in range(16)]


def _name_colours(term: ChatPty) -> dict[str, str]:
    colours = {}
    for name in NAMES:
        row = term.row_of(f"{name}: hello")
        column = term.lines[row].index(f"{name}: hello")
        colours[name] = term.screen.buffer[row][column].fg
    return colours


@pytest.mark.parametrize("env", [{}, {"COLORTERM": "truecolor"}], ids=["256", "truecolor"])
def test_more_than_8_name_colours_the_same_for_a_name_each_time(chat, tmp_path, env):
    members = [chat.join(name) for name in NAMES]
    seen = []
    for attempt in range(2):
        with chat_pty(
            chat.port,
            tmp_path / str(attempt),
            "--name",
            "alice",
            env=env,
            settings="[join]\njoins = off\n",
        ) as term:
            for n, member in enumerate(members):
                member.send_json({"type": "say", "text": "hello", "id": f"{attempt}-{n}"})
                next_of(member, "ack")
            term.wait_text(f"{NAMES[-1]}: hello")
            seen.append(_name_colours(term))
            if env:
                assert re.search(rb"\x1b\[[\d;]*38;2;\d+;\d+;\d+m", term.raw)
    print(f"\nName colours: {seen[0]}")
    assert len(set(seen[0].values())) > 8, seen[0]
    assert seen[0] == seen[1]


def test_a_line_says_when_the_day_changes(chat, tmp_path):
    lead = 6.0  # seconds until midnight, in the child's time zone, when it starts
    midnight = time.time() + lead
    east = int(-midnight) % 86400  # the time zone whose midnight is then
    zone = f"XXX-{east // 3600:02}:{east // 60 % 60:02}:{east % 60:02}"
    with chat_pty(
        chat.port, tmp_path, "--name", "alice", "--time-format", "HH:MM:SS", env={"TZ": zone}
    ) as term:
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "before", "id": "1"})
        term.wait_text("bob: before")
        if not term.lines[term.row_of("bob: before")].startswith("23:59:"):
            pytest.skip("the chat took longer to start than the time left before midnight")
        term.wait_for(lambda: time.time() > midnight + 0.5, "midnight", timeout=lead + 5)
        bob.send_json({"type": "say", "text": "after", "id": "2"})
        term.wait_text("bob: after")
        print("\nAcross midnight:\n" + term.dump())
        day = time.gmtime(midnight + east + 1)
        said = time.strftime("── %A {} %B %Y ──", day).format(day.tm_mday)
        assert term.row_of("bob: before") < term.row_of(said) < term.row_of("bob: after")
        assert term.lines[term.row_of("bob: after")].startswith("00:00:")
