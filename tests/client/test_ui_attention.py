"""The rules behind the settings, the noise filter, the away marker, the title and the layout,
without a terminal: fed with events, a clock the test sets and a real vt100 output on a buffer."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.output.vt100 import Vt100_Output

from tcpchat.client import settings as settings_module
from tcpchat.client.settings import Settings, SettingsError, file_defaults, load
from tcpchat.client.ui.layout import LEAST_INDENT, colour_depth, indent, name_colours
from tcpchat.client.ui.look import Look, day_line
from tcpchat.client.ui.noise import SPOKE_RECENTLY, Noise
from tcpchat.client.ui.notify import (
    MARKER,
    REPORT_FOCUS,
    Attention,
    notification_kind,
)
from tcpchat.client.ui.render import render_event
from tcpchat.protocol import Joined, LeaveReason, Left, Message, Private

TS = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def left(name: str, reason: LeaveReason = LeaveReason.QUIT) -> Left:
    return Left(name=name, members=1, reason=reason, ts=TS)


# --- settings ----------------------------------------------------------------------------------


def test_no_file_is_the_defaults(tmp_path):
    assert load(tmp_path / "none.ini") == Settings()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[join]\nbell = on\nbell = off\n", "option 'bell' in section 'join' already exists"),
        ("[join]\njust words\n", "line 2 is not `name = value`"),
        (b"[join]\nname = \xff\n", "cannot read the settings file"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(tmp_path, text, said):
    path = tmp_path / "settings.ini"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=said.replace("(", r"\(")):
        load(path)


def test_other_sections_are_for_others_and_keys_are_written_either_way(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text("[serve]\nanything = 1\n[join]\nAway-After = 2.5\n", encoding="utf-8")
    assert load(path).away_after == 2.5


def test_set_changes_live_settings_only_and_says_how_to_keep_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(tmp_path))
    chosen = Settings()
    said = chosen.change("quiet", "yes")
    assert chosen.quiet is True
    assert said == (
        f"quiet = on for this session (to keep it, write `quiet = on` under [join] in "
        f"{tmp_path / 'settings.ini'})."
    )
    with pytest.raises(SettingsError, match="only read on joining"):
        chosen.change("port", "2000")
    with pytest.raises(SettingsError, match="there is no setting 'colour'"):
        chosen.change("colour", "256")
    assert chosen.lines("away_after") == ["away_after = 5  (minutes idle that count as away)"]
    assert chosen.lines("name") == ["name = (none)  (your name in the chat)"]
    assert len(chosen.lines()) == len(settings_module.dataclasses.fields(Settings))


def test_the_command_line_s_values_override_and_only_changed_defaults_go_to_click():
    from_file = Settings(name="carol", joins="smart")
    assert file_defaults(from_file, ["name", "port", "password"]) == {"name": "carol"}
    chosen = from_file.overridden({"name": "alice", "password": "x", "time_format": "HH:MM:SS"})
    assert (chosen.name, chosen.joins, chosen.strftime) == ("alice", "smart", "%H:%M:%S")


# --- joins and leaves --------------------------------------------------------------------------


def test_smart_shows_the_leave_of_who_spoke_in_the_last_10_minutes_or_was_removed():
    clock = Clock()
    noise = Noise(Settings(joins="smart"), clock)
    noise.spoke("Bob")
    noise.spoke("carol")
    noise.renamed("carol", "caroline")
    clock.now += SPOKE_RECENTLY - 1
    assert noise.shows(left("bob"))
    assert noise.shows(left("caroline"))
    assert not noise.shows(left("dave"))
    assert noise.shows(left("dave", LeaveReason.KICKED))
    assert not noise.shows(Joined(name="erin", members=2, ts=TS))
    clock.now += 2
    assert not noise.shows(left("bob"))
    assert noise.shows(Message(seq=1, sender="x", text="messages always", ts=TS))


# --- away, the marker, the title ---------------------------------------------------------------


def _output() -> tuple[Vt100_Output, io.StringIO]:
    buffer = io.StringIO()
    return Vt100_Output(buffer, lambda: Size(24, 80), term="xterm"), buffer


def test_away_by_focus_or_by_idleness_marks_counts_and_comes_back():
    clock = Clock()
    chosen = Settings(away_after=1.0)
    attention = Attention(chosen, lambda: "lobby", clock)
    output, written = _output()
    attention.output = output
    said = Message(seq=1, sender="bob", text="hi", ts=TS)
    assert attention.react(said, False) == []
    clock.now += 61  # no focus report yet: a minute idle is away
    assert attention.react(said, False) == [MARKER]
    assert attention.react(said, False) == []  # one marker for one time away
    assert attention.title() == "(2) tcpchat — lobby"
    attention.pressed()
    assert attention.title() == "tcpchat — lobby"
    assert written.getvalue().endswith("\x1b]2;tcpchat — lobby\x07")
    attention.focus(False)  # the terminal reports: idleness no longer counts
    chosen.quiet = True
    assert attention.react(said, False) == [MARKER]
    assert attention.title() == "tcpchat — lobby"  # quiet: not counted
    private = Private(sender="bob", to="alice", text="a\tb", ts=TS)
    chosen.notify = "osc9"
    assert attention.react(private, True) == []
    assert attention.title() == "(1) tcpchat — lobby"
    assert written.getvalue().endswith("\x1b]9;bob (private): a b\x1b\\")
    attention.focus(True)
    assert attention.title() == "tcpchat — lobby"


def test_start_asks_for_focus_reports_and_stop_gives_the_title_back():
    from prompt_toolkit.application import Application

    attention = Attention(Settings(), lambda: "lobby")
    output, written = _output()
    attention.start(Application(output=output), output)
    assert REPORT_FOCUS + "\x1b[22;0t" in written.getvalue()
    attention.settings.title = False  # /set title off: the window's title still comes back
    attention.stop()
    assert written.getvalue().endswith("\x1b[?1004l\x1b[23;0t")


@pytest.mark.parametrize(
    ("setting", "env", "kind"),
    [
        ("auto", {"TERM_PROGRAM": "iTerm.app"}, "osc9"),
        ("auto", {"WT_SESSION": "1"}, "osc9"),
        ("auto", {"TERM": "foot"}, "osc777"),
        ("auto", {"VTE_VERSION": "7600"}, "osc777"),
        ("auto", {"VTE_VERSION": "7600", "TMUX": "/tmp/tmux"}, None),
        ("auto", {"TERM": "xterm-256color"}, None),
        ("osc777", {"TMUX": "/tmp/tmux"}, "osc777"),
        ("off", {"TERM_PROGRAM": "iTerm.app"}, None),
    ],
)
def test_which_notification_the_terminal_takes(setting, env, kind):
    assert notification_kind(setting, env) == kind


# --- the look and the layout -------------------------------------------------------------------


def test_a_day_line_comes_before_the_first_line_of_a_later_day_only():
    look = Look(Settings(), today=lambda: TS.astimezone().date())
    said = Message(seq=1, sender="bob", text="hi", ts=TS)
    assert look.event(said, "alice") == [render_event(said, "alice")]
    tomorrow = Message(seq=2, sender="bob", text="hi", ts=TS + timedelta(days=1))
    next_day = tomorrow.ts.astimezone().date()
    assert look.event(tomorrow, "alice") == [day_line(next_day), render_event(tomorrow, "alice")]
    assert day_line(date(2026, 12, 4)) == [("class:day", "── Friday 4 December 2026 ──")]
    # A line stamped earlier (a server's clock behind) does not take the screen back a day.
    assert look.event(said, "alice") == [render_event(said, "alice")]
    assert look.day == next_day


def test_the_indent_is_under_the_text_unless_past_half_the_width():
    said = render_event(Message(seq=1, sender="bob", text="hi", ts=TS), "alice")
    assert said is not None
    assert indent(said, 80) == len("12:00 bob: ")
    long_name = render_event(Message(seq=1, sender="b" * 40, text="hi", ts=TS), "alice")
    assert long_name is not None
    assert indent(long_name, 80) == len("12:00 ")
    assert indent([("class:notice", "* hello")], 80) == LEAST_INDENT


def test_colour_depth_follows_the_setting_then_the_environment(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("PROMPT_TOOLKIT_COLOR_DEPTH", raising=False)
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert colour_depth("256") is ColorDepth.DEPTH_8_BIT
    assert colour_depth("auto") is ColorDepth.DEPTH_24_BIT
    monkeypatch.setenv("COLORTERM", "")
    assert colour_depth("auto") is None
    assert name_colours(ColorDepth.DEPTH_4_BIT).style_rules == []
    assert len(name_colours(ColorDepth.DEPTH_8_BIT).style_rules) == 360
