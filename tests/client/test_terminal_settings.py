"""The settings file and `/set`, as a person uses them: defaults in tcpchat's folder that the
command line overrides, a mistyped file said in one sentence, and `/set` for the session."""

from __future__ import annotations

import re
import sys

import pytest
from click.testing import CliRunner

if sys.platform == "win32":
    pytest.skip("pexpect needs a POSIX pty", allow_module_level=True)

from support import REPO
from support.chat_pty import chat_pty

from tcpchat.cli import main
from tcpchat.client import settings

pytestmark = pytest.mark.slow

SECONDS_CLOCK = re.compile(r"^\d\d:\d\d:\d\d bob: hi")


def test_the_file_gives_the_defaults_and_the_command_line_wins(chat, tmp_path):
    settings = "[join]\nname = carol\ntime_format = HH:MM:SS\n"
    with chat_pty(chat.port, tmp_path, settings=settings) as term:
        term.wait_text("carol›")
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "hi", "id": "1"})
        term.wait_for(lambda: any(SECONDS_CLOCK.match(line) for line in term.lines), "seconds")
        print("\nWith the file's name and time format:\n" + term.dump())
    with chat_pty(
        chat.port,
        tmp_path / "again",
        "--name",
        "alice",
        "--time-format",
        "HH:MM",
        settings=settings,
    ) as term:
        term.wait_text("alice›")
        bob.send_json({"type": "say", "text": "hi", "id": "2"})
        term.wait_for(lambda: any(re.match(r"^\d\d:\d\d bob: hi", ln) for ln in term.lines), "hi")
        assert not any(SECONDS_CLOCK.match(line) for line in term.lines), term.dump()


def test_the_environment_wins_over_the_file(chat, tmp_path):
    with chat_pty(
        chat.port, tmp_path, env={"TCPCHAT_NAME": "dave"}, settings="[join]\nname = carol\n"
    ) as term:
        term.wait_text("dave›")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[join]\njions = off\n", "there is no setting 'jions'; the settings are name, host"),
        ("[join]\njoins = sometimes\n", "joins: 'sometimes' is not one of 'on', 'off', 'smart'."),
        ("joins = off\n", "line 1 comes before any [section]; settings go under [join]"),
        ("[join]\nport = 70000\n", "port: 70000 is not in the range 1<=x<=65535."),
    ],
)
def test_a_mistake_in_the_file_is_one_sentence_naming_it(tmp_path, text, said):
    (tmp_path / "settings.ini").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["join", "127.0.0.1", "--name", "x"], env={"TCPCHAT_CONFIG_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1, result.output
    assert said in result.output, result.output
    assert str(tmp_path / "settings.ini") in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_help_shows_the_file_s_defaults(tmp_path):
    (tmp_path / "settings.ini").write_text("[join]\ntime-format = HH:MM:SS\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["join", "--help"], env={"TCPCHAT_CONFIG_DIR": str(tmp_path)}, terminal_width=200
    )
    assert re.search(r"--time-format.*default: HH:MM:SS", result.output), result.output


def test_set_changes_a_setting_for_the_session_and_says_it_is_not_saved(chat, tmp_path):
    with chat_pty(chat.port, tmp_path, "--name", "alice") as term:
        term.type("/set\r")
        term.wait_text("joins = on  (joins and leaves: on, off or smart)")
        term.type("/set joins maybe\r")
        term.wait_text("! joins: 'maybe' is not one of 'on', 'off', 'smart'.")
        term.type("/set name bob\r")
        term.wait_text("! name is only read on joining")
        term.type("/set joins off\r")
        term.wait_text("* joins = off for this session (to keep it, write `joins = off` under")
        print("\n/set:\n" + term.dump())
        bob = chat.join("bob")
        bob.send_json({"type": "say", "text": "here", "id": "1"})
        term.wait_text("bob: here")
        assert not any("bob joined" in line for line in term.lines), term.dump()
        term.wait_for(lambda: "2 members online" in term.toolbar(), "2 members online")
    assert not (tmp_path / "settings.ini").exists()


def test_the_readme_s_example_is_a_valid_file(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = readme.split("#### Settings", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]
    (tmp_path / "settings.ini").write_text(example, encoding="utf-8")
    loaded = settings.load(tmp_path / "settings.ini")
    assert (loaded.name, loaded.port, loaded.time_format, loaded.joins) == (
        "alice",
        4000,
        "HH:MM:SS",
        "smart",
    )
    assert (loaded.quiet, loaded.bell, loaded.away_after) == (False, True, 5.0)


def test_shell_completion_goes_on_with_a_mistaken_file(tmp_path):
    (tmp_path / "settings.ini").write_text("[join]\njions = off\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [],
        prog_name="tcpchat",
        env={
            "TCPCHAT_CONFIG_DIR": str(tmp_path),
            "_TCPCHAT_COMPLETE": "bash_complete",
            "COMP_WORDS": "tcpchat join --time",
            "COMP_CWORD": "2",
        },
    )
    assert result.exit_code == 0, result.output
    assert "--time-format" in result.output
