"""`tcpchat join --log FILE`: for the chat screen only (a script's output is its own log)."""

from __future__ import annotations

from click.testing import CliRunner

from tcpchat.cli import main


def test_log_is_refused_for_a_script_in_one_sentence(tmp_path):
    result = CliRunner().invoke(
        main,
        ["join", "127.0.0.1", "--name", "bot", "--log", str(tmp_path / "chat.log")],
        prog_name="tcpchat",
        input="hello\n",
    )
    assert result.exit_code == 2, result.output
    assert "--log is for the chat screen; a script's output is its log." in result.output
    assert not (tmp_path / "chat.log").exists()
