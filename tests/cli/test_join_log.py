"""`tcpchat join --log FILE`, or `log` in the settings file: for the chat screen only (a script's
output is its own log)."""

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


def test_the_settings_file_s_log_is_for_the_chat_screen_and_leaves_a_script_alone(chat, tmp_path):
    (tmp_path / "settings.ini").write_text(f"[join]\nlog = {tmp_path / 'chat.log'}\n")
    result = CliRunner().invoke(
        main,
        ["join", "127.0.0.1", "--port", str(chat.port), "--name", "bot"],
        prog_name="tcpchat",
        input="hello\n",
        env={"TCPCHAT_CONFIG_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "chat.log").exists()
