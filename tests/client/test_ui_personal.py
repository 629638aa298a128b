"""The chat screen's own habits without a screen: long messages in pieces, the count near the
limit, the local commands as typed, ignoring, /r, /away and /back, the session log, and the
scrollback view's paging and search.  No server, no terminal: events, a clock and a file."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from tcpchat.client.session_log import SessionLog
from tcpchat.client.ui.commands import Problem, parse_typed
from tcpchat.client.ui.local_commands import Away, Back, Clear, Ignore, Quit, Reply, Unignore
from tcpchat.client.ui.personal import AUTO_REPLY, Personal
from tcpchat.client.ui.render import fragments_text, render_event
from tcpchat.client.ui.scrollback import Scrollback, ScrollbackView
from tcpchat.client.ui.splitting import count_hint, split_text
from tcpchat.client.ui.state import ChatState, Outcome
from tcpchat.protocol import Bye, Message, Private, Renamed, Welcome, text_problem

TS = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


# --- splitting --------------------------------------------------------------------------------


def test_a_long_message_breaks_at_the_last_space_that_fits():
    assert split_text("aaaa bbbb cccc dddd", 10) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("short", 10) == ["short"]


def test_a_line_break_in_the_second_half_is_where_it_breaks():
    assert split_text("first line\nsecond", 12) == ["first line", "second"]
    assert split_text("a\nbb cc dd ee ff", 10) == ["a\nbb cc dd", "ee ff"]  # too early


def test_a_word_longer_than_a_message_is_cut():
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


@given(st.text(alphabet=" \nab", max_size=200), st.integers(min_value=1, max_value=30))
def test_every_piece_is_a_message_the_server_takes_and_nothing_is_lost(text, limit):
    pieces = split_text(text, limit)
    assert all(text_problem(piece, limit) is None for piece in pieces)
    assert "".join(pieces).replace(" ", "").replace("\n", "") == (
        text.replace(" ", "").replace("\n", "")
    )


def test_the_count_shows_from_nine_tenths_of_the_limit():
    assert count_hint("x" * 89, 100) == []
    assert fragments_text(count_hint("x" * 90, 100)) == "90/100"
    assert fragments_text(count_hint("aaaa bbbb cccc", 10)) == "14/10 → 2 messages"


# --- typed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("/quit", Bye()),
        ("/QUIT see you", Quit("see you")),
        ("/r  hi there", Reply("hi there")),
        ("/r", Problem("usage: /r TEXT")),
        ("/away", Away("")),
        ("/away gone fishing", Away("gone fishing")),
        ("/back", Back()),
        ("/back now", Problem("usage: /back")),
        ("/ignore", Ignore("")),
        ("/ignore bob", Ignore("bob")),
        ("/ignore bob carol", Problem("usage: /ignore [NAME]")),
        ("/unignore bob", Unignore("bob")),
        ("/unignore", Problem("usage: /unignore NAME")),
        ("/clear", Clear()),
    ],
)
def test_the_local_commands_as_typed(typed, parsed):
    assert parse_typed(typed) == parsed


# --- ignore, /r, away -------------------------------------------------------------------------


def said(sender: str, text: str, seq: int = 1) -> Message:
    return Message(seq=seq, sender=sender, text=text, ts=TS)


def private(sender: str, text: str) -> Private:
    return Private(sender=sender, to="alice", text=text, ts=TS)


def shown(personal: Personal, event: Message | Private, bell: bool = False) -> Outcome:
    fragments = render_event(event, "alice")
    assert fragments is not None
    outcome, _ = personal.receive(event, Outcome([fragments], bell=bell))
    return outcome


def test_an_ignored_name_shows_nothing_and_rings_no_bell_even_renamed():
    personal = Personal()
    names = ["alice", "bob", "carol"]
    welcome = Welcome(
        name="alice", members=3, names=names, server="s", motd=None, max_text=99, version=1
    )
    state = ChatState(welcome)
    personal._ignore("BOB", state)
    assert personal.ignored == {"bob": "bob"}
    assert fragments_text(personal._ignore("Alice", state)[0]) == "! you cannot ignore yourself."
    assert shown(personal, private("bob", "psst"), bell=True) == Outcome()
    assert personal.last_private is None  # /r does not answer someone ignored
    personal.receive(Renamed(old="bob", new="bobby", ts=TS), Outcome())
    assert shown(personal, said("bobby", "hi")) == Outcome()
    assert shown(personal, said("carol", "hi")).lines
    assert "show again" in fragments_text(personal._unignore("Bobby")[0])
    assert shown(personal, said("bobby", "hi")).lines


def test_r_follows_the_last_private_sender_through_a_rename():
    personal = Personal()
    shown(personal, private("bob", "psst"), bell=True)
    personal.receive(Renamed(old="bob", new="robert", ts=TS), Outcome())
    assert personal.last_private == "robert"


def test_away_answers_each_sender_once_and_never_an_answer():
    now = [0.0]
    personal = Personal(clock=lambda: now[0])
    personal._go_away("lunch")
    event = private("bob", "there?")
    line = [("", "bob (private): there?")]
    assert personal.receive(event, Outcome([line], bell=True))[1] == [("bob", AUTO_REPLY + "lunch")]
    assert personal.receive(event, Outcome([line], bell=True))[1] == []
    assert personal.receive(private("carol", AUTO_REPLY + "x"), Outcome(bell=True))[1] == []
    now[0] = 600.0
    lines = [fragments_text(line) for line in personal._come_back()]
    assert lines == [
        "── back after 10 minutes: 0 messages, 0 mentions of you, 3 private messages ──",
        "bob (private): there?",
        "bob (private): there?",
        "── now ──",
    ]
    assert personal._come_back()[0][0][0] == "class:problem"  # not away any more


def test_back_after_a_quiet_absence_is_one_line():
    personal = Personal(clock=lambda: 0.0)
    personal._go_away("")
    shown(personal, said("bob", "hello"))
    assert [fragments_text(line) for line in personal._come_back()] == [
        "* Back after 1 second: 1 message, 0 mentions of you, 0 private messages."
    ]


# --- the log ----------------------------------------------------------------------------------


def test_the_log_marks_its_start_the_day_changing_and_its_end(tmp_path: Path):
    moments = iter(
        [
            datetime(2026, 12, 3, 23, 59, 0),  # opened
            datetime(2026, 12, 3, 23, 59, 30),  # first line
            datetime(2026, 12, 4, 0, 0, 5),  # second line, the next day
            datetime(2026, 12, 4, 0, 1, 0),  # closed
        ]
    )
    log = SessionLog.open(tmp_path / "chat.log", now=lambda: next(moments))
    log.start("alice on example.org")
    log.write("23:59 bob: two\nlines")
    log.write("00:00 bob: tomorrow")
    log.close()
    log.close()  # once is enough
    assert (tmp_path / "chat.log").read_text(encoding="utf-8").splitlines() == [
        "--- Log opened Thu Dec 03 23:59:00 2026 (alice on example.org)",
        "23:59 bob: two",
        "    ¦ lines",
        "--- Day changed Fri Dec 04 2026",
        "00:00 bob: tomorrow",
        "--- Log closed Fri Dec 04 00:01:00 2026",
    ]


def test_a_log_never_started_is_closed_without_a_word():
    file = io.StringIO()
    SessionLog(file).close()
    assert file.closed


# --- the scrollback view ----------------------------------------------------------------------


def test_the_view_pages_searches_back_and_leaves_past_the_end():
    scrollback = Scrollback(size=50)
    for n in range(60):
        scrollback.add([("", f"line {n}")])
    assert len(scrollback.lines) == 50 and scrollback.added == 60
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        view = ScrollbackView(scrollback)  # DummyOutput: 40 rows, 80 columns
        view.scroll(-10)
        assert view.top == 1  # 50 rows, 39 shown: the last page starts at 11
        view.find("line 3")
        assert view.found is not None and fragments_text(scrollback.lines[view.found]) == "line 39"
        view.find("line 3")
        assert fragments_text(scrollback.lines[view.found]) == "line 38"
        view.find("line 3", older=False)
        assert fragments_text(scrollback.lines[view.found]) == "line 39"
        view.find("nowhere")
        assert view.said == "“nowhere” not found further back"
        view.top = None
        assert "rows 12–50 of 50" in fragments_text(view._status())


def test_the_view_makes_rows_only_for_new_lines_and_lets_the_oldest_go():
    scrollback = Scrollback(size=5)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        view = ScrollbackView(scrollback)
        for n in range(12):
            scrollback.add([("", f"line {n} " + "word " * (n * 7))])  # 1 to 6 rows each
            view._make_rows()
            fresh = ScrollbackView(scrollback)
            fresh._make_rows()
            assert (view._rows, view._starts) == (fresh._rows, fresh._starts)
        view.find("line 8")
        assert view.found == 1
        scrollback.add([("", "line 12")])
        view._make_rows()
        assert view.found == 0
        scrollback.add([("", "line 13")])
        view._make_rows()
        assert view.found is None


def test_away_by_command_holds_through_focus_and_keys_until_back():
    from tcpchat.client.settings import Settings
    from tcpchat.client.ui.notify import MARKER, Attention

    attention = Attention(Settings(), lambda: "lobby")
    attention.focus(True)
    said = Message(seq=1, sender="bob", text="hi", ts=TS)
    attention.declare(True)
    assert attention.react(said, False) == [MARKER]
    attention.pressed()  # typing while away (`/back` itself is typed)
    attention.focus(True)
    assert attention.react(said, False) == []  # one marker for one absence
    assert attention.title() == "(2) tcpchat — lobby"
    attention.declare(False)
    assert attention.title() == "tcpchat — lobby"
    assert attention.react(said, False) == []
