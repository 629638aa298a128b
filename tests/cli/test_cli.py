"""The `tcpchat` command line: help, version, options, errors, completion, and a real `serve` process.

In-process checks use Click's `CliRunner` (prog_name "tcpchat"); `serve` itself runs as a
subprocess (`python -m tcpchat serve`) so its signals, stdout and exit code are the real ones.
Every wait has a deadline; every subprocess is killed when its test ends.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from support import REPO, TIMEOUT
from support.process import LISTENING, Process, clean_env, free_port, python_prints
from support.wire import LineClient

from tcpchat import __version__
from tcpchat.cli import main
from tcpchat.cli.join import join as join_command
from tcpchat.cli.serve import serve as serve_command

# After Ctrl-C or SIGTERM the server is gone within 2 seconds (scaled with TIMEOUT).
SHUTDOWN_LIMIT = 2.0 * TIMEOUT / 5
ROOT = REPO
SHELLS = ("bash", "zsh", "fish")

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_tcpchat_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CliRunner runs in this process: keep the tester's TCPCHAT_ variables out of it."""
    for key in list(os.environ):
        if key.upper().startswith(("TCPCHAT_", "_TCPCHAT")) and key != "TCPCHAT_TEST_TIMEOUT":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def server_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the running of a server with a record of its settings (no socket is opened)."""
    calls: list[dict[str, Any]] = []

    def record(config: Any, **options: Any) -> None:
        calls.append({"config": config, **options})

    monkeypatch.setattr("tcpchat.server.run.run_server", record)
    return calls


def invoke(args: list[str], **kwargs: Any) -> Result:
    return CliRunner().invoke(main, args, prog_name="tcpchat", **kwargs)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start `python -m tcpchat ARGS...`; every process is killed when the test ends."""
    started: list[Process] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Process:
        process = Process(
            [sys.executable, "-m", "tcpchat", *args],
            env or clean_env(tmp_path / "config"),
            preexec_fn=preexec_fn,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def serve(spawn: Callable[..., Process]) -> Callable[..., tuple[Process, int]]:
    """Start a real server process on 127.0.0.1:0 and return it with the port it printed."""

    def start(*extra: str) -> tuple[Process, int]:
        process = spawn("serve", "--port", "0", "--host", "127.0.0.1", "--name", "t", *extra)
        line = process.wait_for_line(matching(LISTENING.pattern))
        match = LISTENING.search(line)
        assert match is not None
        return process, int(match.group(1))

    return start


@pytest.fixture
def clients() -> Iterator[Callable[[int], LineClient]]:
    """Raw line clients to a server process on 127.0.0.1; closed when the test ends."""
    opened: list[LineClient] = []

    def connect(port: int) -> LineClient:
        client = LineClient("127.0.0.1", port, TIMEOUT)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def join_plain(client: LineClient, name: str) -> None:
    """Join as `nc` would: read the banner, type a name, read up to the /help hint."""
    banner = client.read_line()
    assert not banner.startswith("{"), banner
    client.send_line(name)
    client.read_until(lambda line: "/help" in line)


def join_json(client: LineClient, name: str) -> dict[str, Any]:
    client.read_line()  # the banner
    client.send_json({"type": "hello", "name": name, "version": 1})
    return client.expect("welcome")


def matching(pattern: str) -> Callable[[str], bool]:
    return lambda line: re.search(pattern, line) is not None


def local_port(client: LineClient) -> int:
    return int(client.sock.getsockname()[1])


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- help and version ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_both_commands(flag: str) -> None:
    result = invoke([flag])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: tcpchat ")
    assert re.search(r"^\s+serve\s+\S", result.output, re.MULTILINE), result.output
    assert re.search(r"^\s+join\s+\S", result.output, re.MULTILINE), result.output


def test_serve_help_shows_every_option_with_its_environment_variable() -> None:
    result = invoke(["serve", "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: tcpchat serve [OPTIONS]")
    flat = " ".join(result.output.split())  # help text is wrapped at any width
    for option in serve_command.params:
        assert isinstance(option, click.Option)
        assert option.opts[0] in flat
        for variable in [option.envvar] if isinstance(option.envvar, str) else option.envvar:
            assert variable in flat


def test_join_help_shows_host_and_every_option() -> None:
    result = invoke(["join", "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: tcpchat join [OPTIONS] [HOST]")
    flat = " ".join(result.output.split())
    for option in join_command.params:
        if isinstance(option, click.Option):
            assert option.opts[0] in flat
            assert option.envvar in flat


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_program_and_version(flag: str) -> None:
    result = invoke([flag])
    assert result.exit_code == 0
    assert result.output == f"tcpchat, version {__version__}\n"


def test_python_dash_m_tcpchat_prints_version(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tcpchat", "--version"],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env=clean_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tcpchat, version {__version__}"


# --- every option documented and configurable ---------------------------------------------------


def _command_options() -> list[tuple[str, click.Option]]:
    found = []
    for command in [main, *main.commands.values()]:
        for param in command.params:
            # --version is an eager action, not a setting; it has nothing to read from the environment.
            if isinstance(param, click.Option) and param.expose_value:
                found.append((command.name or "tcpchat", param))
    return found


COMMAND_OPTIONS = _command_options()


def test_the_group_has_serve_and_join() -> None:
    assert {"serve", "join"} <= set(main.commands)
    assert {name for name, _ in COMMAND_OPTIONS} >= {"serve", "join"}


@pytest.mark.parametrize(
    ("command", "option"), COMMAND_OPTIONS, ids=[f"{c} {o.opts[0]}" for c, o in COMMAND_OPTIONS]
)
def test_option_help_is_one_sentence_ending_with_a_period(
    command: str, option: click.Option
) -> None:
    text = option.help
    assert isinstance(text, str) and text == text.strip(), text
    assert text[0].isupper() or text[0].isdigit(), text
    assert text.endswith("."), text
    assert not re.search(r"[.!?]\s", text), f"more than one sentence: {text!r}"


@pytest.mark.parametrize(
    ("command", "option"), COMMAND_OPTIONS, ids=[f"{c} {o.opts[0]}" for c, o in COMMAND_OPTIONS]
)
def test_option_can_be_set_by_a_tcpchat_environment_variable(
    command: str, option: click.Option
) -> None:
    variables = _variables(option)
    assert variables, option.opts
    for variable in variables:
        assert re.fullmatch(r"TCPCHAT_[A-Z0-9_]+", variable), variable


def _variables(option: click.Option) -> list[str]:
    return [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or [])


def test_no_two_options_share_an_environment_variable_but_the_password() -> None:
    # TCPCHAT_PASSWORD is the one both ask for: the server's, and the one to join with.
    names = [v for _, option in COMMAND_OPTIONS for v in _variables(option)]
    shared = {name for name in names if names.count(name) > 1}
    assert shared == {"TCPCHAT_PASSWORD"}, names


def test_serve_takes_its_password_from_tcpchat_password(server_calls: list[dict[str, Any]]) -> None:
    result = invoke(["serve"], env={"TCPCHAT_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    assert server_calls[-1]["config"].password == "s3cret"


def test_serve_port_comes_from_tcpchat_serve_port(server_calls: list[dict[str, Any]]) -> None:
    result = invoke(["serve"], env={"TCPCHAT_SERVE_PORT": "4321", "TCPCHAT_SERVE_NAME": "from-env"})
    assert result.exit_code == 0, result.output
    (call,) = server_calls
    assert call["config"].port == 4321
    assert call["config"].name == "from-env"


def test_serve_port_option_overrides_the_environment(server_calls: list[dict[str, Any]]) -> None:
    result = invoke(["serve", "--port", "5432"], env={"TCPCHAT_SERVE_PORT": "4321"})
    assert result.exit_code == 0, result.output
    assert server_calls[0]["config"].port == 5432


def test_bad_port_in_the_environment_is_a_usage_error_naming_the_variable(
    server_calls: list[dict[str, Any]],
) -> None:
    result = invoke(["serve"], env={"TCPCHAT_SERVE_PORT": "70000"})
    assert result.exit_code == 2
    assert "TCPCHAT_SERVE_PORT" in result.stderr
    assert server_calls == []


# --- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "70000"],
        ["serve", "--port", "-1"],
        ["serve", "--port", "http"],
        ["serve", "--max-text", "0"],
        ["serve", "--max-text", "100000"],
        ["serve", "--max-clients", "0"],
        ["serve", "--history", "-1"],
        ["serve", "--idle-timeout", "0"],
        ["serve", "--log-level", "loud"],
        ["serve", "--no-such-option"],
        ["join", "127.0.0.1", "--port", "0"],
        ["join", "127.0.0.1", "--port", "70000"],
        ["frobnicate"],
    ],
    ids=" ".join,
)
def test_bad_option_value_exits_2_with_usage_and_no_traceback(
    args: list[str], server_calls: list[dict[str, Any]]
) -> None:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("Usage: tcpchat"), result.stderr
    assert "Error:" in result.stderr
    assert "Traceback" not in result.output
    assert server_calls == []


# --- start-up cost ------------------------------------------------------------------------------


def modules_loaded_by(args: list[str], imports: str, tmp_path: Path) -> set[str]:
    """The modules a fresh Python holds after `import {imports}` and `tcpchat ARGS`."""
    code = (
        "import sys\n"
        f"import {imports}\n"
        f"tcpchat.cli.main({args!r}, prog_name='tcpchat', standalone_mode=False)\n"
        "print(*sorted(sys.modules))\n"
    )
    return set(python_prints(code, tmp_path).split())


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["join", "--help"]], ids=" ".join
)
def test_help_and_serve_do_not_import_prompt_toolkit(args: list[str], tmp_path: Path) -> None:
    imports = "tcpchat.cli, tcpchat.server.chat_server, tcpchat.server.console, tcpchat.sockets"
    loaded = sorted(
        m for m in modules_loaded_by(args, imports, tmp_path) if m.startswith("prompt_toolkit")
    )
    assert not loaded, loaded[:5]


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["join", "--help"], ["bench", "--help"]], ids=" ".join
)
def test_help_loads_neither_asyncio_nor_the_protocol(args: list[str], tmp_path: Path) -> None:
    """What makes `tcpchat --help` quick (well under 150 ms): only Click and the numbers."""
    heavy = {"asyncio", "ssl", "tcpchat.protocol", "cryptography", "prompt_toolkit"}
    loaded = sorted(heavy & modules_loaded_by(args, "tcpchat.cli", tmp_path))
    assert not loaded, loaded


# --- a real server process ----------------------------------------------------------------------


def test_serve_welcome_names_the_server_and_how_to_join(
    serve: Callable[..., tuple[Process, int]],
) -> None:
    process, port = serve()
    process.wait_for_line(lambda line: "Ctrl-C" in line)
    text = "\n".join(process.out)
    assert "'t'" in process.out[0], process.out
    assert f"tcpchat join 127.0.0.1 --port {port}" in text
    assert f"nc 127.0.0.1 {port}" in text
    assert "Traceback" not in "\n".join(process.err)


def test_serve_tls_welcome_shows_the_certificate_fingerprint_and_the_idle_rule(
    serve: Callable[..., tuple[Process, int]], tmp_path: Path
) -> None:
    from tcpchat.tls import certificate_fingerprint

    process, port = serve("--tls", "--idle-timeout", "10")
    process.wait_for_line(lambda line: "Ctrl-C" in line)
    text = "\n".join(process.out)
    fingerprint = certificate_fingerprint(tmp_path / "config" / "tls-cert.pem")
    assert f"Certificate fingerprint: {fingerprint}" in text
    assert f"tcpchat join 127.0.0.1 --port {port} --tls" in text
    assert f"openssl s_client -quiet -connect 127.0.0.1:{port}" in text
    assert "Members silent for 10 minutes are warned, then removed." in text


def test_serve_quiet_still_says_where_it_listens(
    serve: Callable[..., tuple[Process, int]], clients: Callable[[int], LineClient]
) -> None:
    """`--port 0 --quiet` must still name the port it picked, or nobody could join."""
    process, port = serve("--quiet")  # waits for the "Listening on ..., port N." line
    join_plain(clients(port), "alice")
    assert not any("Welcome" in line for line in process.out), process.out


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600], ids=oct)
def test_a_tls_key_other_users_can_read_is_warned_about_once(
    mode: int, serve: Callable[..., tuple[Process, int]], tmp_path: Path
) -> None:
    from tcpchat.tls import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path / "pair", "t")
    key.chmod(mode)
    process, _ = serve("--tls-cert", str(cert), "--tls-key", str(key), "--quiet")
    process.wait_for_line(matching(LISTENING.pattern))  # printed after any warning
    warned = [line for line in process.out if str(key) in line]
    assert len(warned) == (0 if mode == 0o600 else 1), process.out
    if warned:
        assert f"mode {mode:04o}" in warned[0] and "chmod 600" in warned[0]


def test_serve_prints_joins_and_leaves_with_member_counts(
    serve: Callable[..., tuple[Process, int]], clients: Callable[[int], LineClient]
) -> None:
    process, port = serve()
    alice = clients(port)
    join_plain(alice, "alice")
    process.wait_for_line(
        matching(rf"alice joined from 127\.0\.0\.1:{local_port(alice)} \(1 member online\)$")
    )
    bob = clients(port)
    join_plain(bob, "bob")
    process.wait_for_line(
        matching(rf"bob joined from 127\.0\.0\.1:{local_port(bob)} \(2 members online\)$")
    )
    bob.send_line("/quit")
    bob.read_eof()
    process.wait_for_line(matching(r"bob left \(quit\) .*\(1 member online\)$"))
    alice.close()
    process.wait_for_line(matching(r"alice left .*\(0 members online\)$"))


@pytest.mark.slow
@posix_signals
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_stop_signal_tells_members_and_exits_0_quickly(
    signame: str,
    serve: Callable[..., tuple[Process, int]],
    clients: Callable[[int], LineClient],
) -> None:
    process, port = serve()
    plain = clients(port)
    join_plain(plain, "alice")
    robot = clients(port)
    join_json(robot, "robot")
    plain.read_until(lambda line: "robot joined" in line)

    process.popen.send_signal(getattr(signal, signame))
    assert process.wait(SHUTDOWN_LIMIT) == 0, process.err
    assert "Traceback" not in "\n".join(process.err)

    json_lines = robot.read_eof().decode().splitlines()
    assert json_lines, "the JSON member got nothing before the close"
    last = json.loads(json_lines[-1])
    assert last["type"] == "shutdown" and last["message"], last

    plain_lines = [line for line in plain.read_eof().decode().splitlines() if line.strip()]
    assert plain_lines, "the plain member got nothing before the close"
    assert plain_lines[-1].rstrip("\r") == f"* {last['message']}"


def test_log_file_is_private_and_holds_client_addresses(
    serve: Callable[..., tuple[Process, int]],
    clients: Callable[[int], LineClient],
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "server.log"
    process, port = serve("--log-file", str(log_path))
    assert log_path.exists()
    if os.name == "posix":
        assert log_path.stat().st_mode & 0o777 == 0o600
    alice = clients(port)
    join_plain(alice, "alice")
    address = f"127.0.0.1:{local_port(alice)}"
    process.wait_for_line(lambda line: "alice joined" in line)
    # The console line comes first; the file gets the same record right after it: poll briefly.
    deadline = time.monotonic() + TIMEOUT
    while address not in log_path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, log_path.read_text(encoding="utf-8")
        time.sleep(0.01)


def test_log_file_in_a_missing_folder_exits_1_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpchat",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-file",
            str(tmp_path / "no" / "such" / "folder" / "server.log"),
        ],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env=clean_env(tmp_path),
    )
    assert result.returncode == 1, result
    assert len(stderr_lines(result.stderr)) == 1, result.stderr
    assert "log file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", None], ids=["loopback", "all-interfaces"])
def test_port_in_use_exits_1_with_one_readable_line(host: str | None, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [sys.executable, "-m", "tcpchat", "serve", "--port", str(port)]
        if host:
            args += ["--host", host]
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=3 * TIMEOUT, env=clean_env(tmp_path)
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"serve kept running on a port in use: {exc.stdout!r}") from None
    assert result.returncode == 1, result
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0] and "in use" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_run_server_says_why_it_cannot_listen_as_a_serve_error(tmp_path: Path) -> None:
    """The serve process without the command line (as an embedder calls it): a sentence, no exit."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = (
            "from tcpchat.server.chat_server import ServerConfig\n"
            "from tcpchat.server.run import ServeError, run_server\n"
            "try:\n"
            f"    run_server(ServerConfig(host='127.0.0.1', port={port}), quiet=True,"
            " log_file=None, log_level='info')\n"
            "except ServeError as error:\n"
            "    print(type(error).__name__, error)\n"
        )
        printed = python_prints(code, tmp_path)
    assert printed == (
        f"ServeError 127.0.0.1 port {port} is already in use; stop the other server or choose "
        "another --port.\n"
    ), printed


def test_serve_on_uvloop_where_it_is_not_installed_is_wrong_usage(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['uvloop'] = None  # as if it were not installed\n"
        "from tcpchat.cli import main\n"
        "main(['serve', '--host', '127.0.0.1', '--port', '0', '--event-loop', 'uvloop'],"
        " prog_name='tcpchat')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env=clean_env(tmp_path),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("Usage: tcpchat serve"), result.stderr
    assert "Error: uvloop is not installed here" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unresolvable_listen_host_exits_1_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tcpchat", "serve", "--host", "nohost.invalid", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        env=clean_env(tmp_path),
    )
    assert result.returncode == 1, result
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "nohost.invalid" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_port_from_the_environment_in_a_real_process(
    spawn: Callable[..., Process], tmp_path: Path, clients: Callable[[int], LineClient]
) -> None:
    port = free_port()
    env = clean_env(tmp_path / "config")
    env.update(TCPCHAT_SERVE_PORT=str(port), TCPCHAT_SERVE_HOST="127.0.0.1")
    process = spawn("serve", "--name", "t", env=env)
    process.wait_for_line(lambda line: f"port {port}." in line)
    join_plain(clients(port), "alice")


# --- shell completion ---------------------------------------------------------------------------


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "tcpchat_completions_generate", ROOT / "completions" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_completion_script_is_current(shell: str) -> None:
    generator = _load_generator()
    fresh = generator.completion_script(shell)
    assert fresh.strip(), "the generator produced nothing"
    committed = (ROOT / "completions" / f"tcpchat.{shell}").read_text(encoding="utf-8")
    assert committed == fresh, f"run: python completions/generate.py ({shell} is stale)"


def _complete(words: str, cword: int) -> list[str]:
    result = invoke(
        [],
        env={"_TCPCHAT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)},
    )
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_completion_offers_serve_for_se() -> None:
    assert _complete("tcpchat se", 1) == ["serve"]


def test_completion_offers_options_of_join() -> None:
    assert "--name" in _complete("tcpchat join --na", 2)


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_command_prints_the_committed_script(shell: str) -> None:
    result = invoke(["completion", shell])
    assert result.exit_code == 0, result.output
    assert result.stdout == (ROOT / "completions" / f"tcpchat.{shell}").read_text(encoding="utf-8")


def test_completion_command_defaults_to_the_login_shell() -> None:
    result = invoke(["completion"], env={"SHELL": "/usr/bin/zsh"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("#compdef tcpchat")


def test_completion_command_explains_an_unknown_login_shell() -> None:
    result = invoke(["completion"], env={"SHELL": "/bin/tcsh"})
    assert result.exit_code == 2
    assert "cannot tell your shell from $SHELL; give one of: bash, zsh, fish." in result.stderr


def test_completion_offers_log_levels() -> None:
    assert _complete("tcpchat serve --log-level w", 3) == ["warning"]


def test_completion_offers_recent_hosts_then_this_machine(tmp_path: Path, monkeypatch) -> None:
    from tcpchat.client import recent

    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(tmp_path))
    recent.remember("chat.example.org", "alice")
    recent.remember("10.0.0.7", "bob")
    assert _complete("tcpchat join ", 2) == [
        "10.0.0.7",
        "chat.example.org",
        "127.0.0.1",
        "localhost",
    ]
    assert _complete("tcpchat join --name ", 3) == ["bob", "alice"]
    assert _complete("tcpchat join --name a", 3) == ["alice"]


@pytest.mark.parametrize("command", [[], ["serve"], ["join"], ["completion"]])
def test_every_help_states_the_exit_codes(command: list[str]) -> None:
    result = invoke([*command, "--help"])
    assert result.exit_code == 0
    assert "Exit status: 0 done, 1 failed" in " ".join(result.output.split())


@pytest.mark.slow
def test_python_dash_m_is_the_same_command_as_the_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tcpchat"
    if not script.exists():
        pytest.skip("the tcpchat script is not installed beside this Python")
    env = clean_env(tmp_path)
    for args in (["--help"], ["--version"], ["join", "--help"], ["serve", "--port", "x"]):
        by_module = subprocess.run(
            [sys.executable, "-m", "tcpchat", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=4 * TIMEOUT,
        )
        by_script = subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=4 * TIMEOUT
        )
        assert (by_module.returncode, by_module.stdout, by_module.stderr) == (
            by_script.returncode,
            by_script.stdout,
            by_script.stderr,
        ), args


@pytest.mark.parametrize(
    ("command", "option"), COMMAND_OPTIONS, ids=[f"{c} {o.opts[0]}" for c, o in COMMAND_OPTIONS]
)
def test_option_shows_its_default_or_says_what_happens_without(
    command: str, option: click.Option
) -> None:
    # The context shows defaults; an option without one says in words what happens instead.
    assert option.show_envvar
    assert option.is_flag or option.default is not None or isinstance(option.show_default, str)


@posix_signals
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_runs_on_either_event_loop(
    loop: str, serve: Callable[..., tuple[Process, int]], clients: Callable[[int], LineClient]
) -> None:
    if loop == "uvloop":
        pytest.importorskip(
            "uvloop", reason="uvloop is not installed (pip install 'tcpchat[fast]')"
        )
    process, port = serve("--event-loop", loop)
    alice, bob = clients(port), clients(port)
    for client, name in ((alice, "alice"), (bob, "bob")):
        client.read_line()
        client.send_json({"type": "hello", "name": name, "version": 1})
        client.expect("welcome")
    alice.send_json({"type": "say", "text": "on " + loop, "id": "1"})
    assert alice.read_until(lambda line: '"ack"' in line)
    assert bob.read_until(lambda line: f'"text":"on {loop}"' in line)
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait(SHUTDOWN_LIMIT + TIMEOUT) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--idle-timeout", "nan"],
        ["--idle-timeout", "inf"],
        ["--register-timeout", "nan"],
        ["--rate", "inf"],
        ["--rate", "nan"],
        ["--rate", "1e308"],
        ["--history", "1" + "0" * 20],
        ["--connect-rate", "9" * 400],
        ["--send-buffer", "0"],
    ],
    ids=" ".join,
)
def test_serve_refuses_numbers_that_would_break_it(args: list[str], server_calls) -> None:
    result = invoke(["serve", *args])
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.stderr and "Traceback" not in result.output
    assert not server_calls


# Few enough descriptors to fill with connections quickly, enough for Python, uvloop and two members.
DESCRIPTORS = 48
OUT_OF_DESCRIPTORS = "cannot accept new connections"


def _lower_open_files_limit() -> None:
    """In the child before it runs: soft and hard limit both, so serve cannot raise it again."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


def _banner_or_warning(probe: LineClient, process: Process) -> str:
    """'banner' when the server let `probe` in, 'waiting' once it says it is out of descriptors."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if any(OUT_OF_DESCRIPTORS in line for line in process.out):
            return "waiting"
        readable, _, _ = select.select([probe.sock], [], [], 0.02)
        if readable:
            assert "Welcome" in probe.read_line()
            return "banner"
    raise AssertionError(f"neither a banner nor a warning; stdout={process.out!r}")


@pytest.mark.slow
@posix_signals
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_out_of_descriptors_new_connections_wait_quietly_and_members_go_on(
    loop: str, spawn: Callable[..., Process], clients: Callable[[int], LineClient]
) -> None:
    """With the open-files limit reached, accepting pauses with one warning (no traceback per
    attempt), members still talk, and a waiting connection is let in once another closes."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    process = spawn(
        "serve", "--port", "0", "--host", "127.0.0.1", "--name", "t", "--event-loop", loop,
        "--max-per-address", "0", "--connect-rate", "0",  # every test client is 127.0.0.1
        preexec_fn=_lower_open_files_limit,
    )  # fmt: skip
    match = LISTENING.search(process.wait_for_line(matching(LISTENING.pattern)))
    assert match is not None
    port = int(match.group(1))
    alice, bob = clients(port), clients(port)
    join_plain(alice, "alice")
    join_plain(bob, "bob")

    outcome, waiting = "banner", None
    for _ in range(DESCRIPTORS):  # one at a time, until the server has no descriptor left
        waiting = clients(port)
        outcome = _banner_or_warning(waiting, process)
        if outcome == "waiting":
            break
    assert outcome == "waiting" and waiting is not None, process.out

    alice.send_line("still here")
    bob.read_until(lambda line: "still here" in line)
    bob.send_line("me too")
    alice.read_until(lambda line: "me too" in line)

    alice.close()  # frees a descriptor: the waiting connection is let in
    assert "Welcome" in waiting.read_line(), process.out
    process.wait_for_line(lambda line: "accepting new connections again" in line)

    process.popen.send_signal(signal.SIGTERM)
    assert process.wait(SHUTDOWN_LIMIT + TIMEOUT) == 0
    output = "\n".join(process.out + process.err)
    assert "Traceback" not in output, output[-3000:]
    assert sum(OUT_OF_DESCRIPTORS in line for line in process.out) == 1, process.out


# --- join: where to ------------------------------------------------------------------------------


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def run_join(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tcpchat join ARGS... --name bot` as a script (no input): it joins and leaves."""
    return subprocess.run(
        [sys.executable, "-m", "tcpchat", "join", *args, "--name", "bot"],
        input="",
        capture_output=True,
        text=True,
        env=clean_env(tmp_path / "config"),
        timeout=4 * TIMEOUT,
    )


@pytest.mark.parametrize(
    "where",
    ["127.0.0.1:{port}", "127.0.0.1:{port} --port {port}", "[::1]:{port}", "::1 --port {port}"],
)
def test_join_takes_the_port_with_the_host(where: str, start_server, tmp_path: Path) -> None:
    host = "::1" if "::1" in where else "127.0.0.1"
    if host == "::1" and not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    server = start_server(host=host)
    member = server.join("alice", host=host)
    result = run_join(tmp_path, *where.format(port=server.port).split())
    assert result.returncode == 0, result.stderr
    assert member.expect("joined")["name"] == "bot"


def test_join_port_in_the_settings_file_gives_way_to_the_one_in_host(
    start_server, tmp_path: Path
) -> None:
    """The command line wins over the settings file: HOST:PORT is not the port given twice."""
    server = start_server()
    member = server.join("alice")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.ini").write_text("[join]\nport = 4000\n")
    result = run_join(tmp_path, f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    assert member.expect("joined")["name"] == "bot"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["127.0.0.1:4000", "--port", "5000"], "4000 in HOST and 5000 with --port"),
        (["[::1]:4000", "--port", "5000"], "4000 in HOST and 5000 with --port"),
        (["127.0.0.1:http"], "'http' is not a port"),
        (["[::1"], "no ]"),
    ],
)
def test_join_host_that_cannot_be_read_or_disagrees_is_a_usage_error(
    args: list[str], words: str
) -> None:
    result = invoke(["join", *args, "--name", "bot"])
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_join_port_from_the_environment_that_disagrees_is_a_usage_error() -> None:
    result = invoke(["join", "127.0.0.1:4000", "--name", "bot"], env={"TCPCHAT_PORT": "5000"})
    assert result.exit_code == 2, result.output
    assert "4000 in HOST and 5000 with --port" in result.stderr, result.stderr
