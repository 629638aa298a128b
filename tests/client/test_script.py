"""`tcpchat join` with standard input that is not a terminal (PROTOCOL.md, "Client command line,
for scripts"): each input line is a message, events go to stdout, the exit code tells how it went.

The client runs as a real subprocess (`python -m tcpchat join ...`) against the in-process server
of conftest; a raw JSON member on the other side checks what arrived.  Every subprocess has a
deadline and is killed when its test ends.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import TIMEOUT

from tcpchat.client.script import ScriptSession
from tcpchat.protocol import HistoryPage, Message, Results

if TYPE_CHECKING:
    from support.running import RunningServer
    from support.wire import LineClient

# A join process starts Python, connects, sends and waits for acks: allow a few units.
RUN_LIMIT = 3 * TIMEOUT


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment for `tcpchat join`: none of the tester's TCPCHAT_ settings, a private config."""
    clean = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("TCPCHAT_", "_TCPCHAT"))
    }
    clean["TCPCHAT_CONFIG_DIR"] = str(tmp_path / "config")
    # Output must reach a pipe promptly by itself, not thanks to the tester's environment.
    clean.pop("PYTHONUNBUFFERED", None)
    return clean


def join_args(
    port: int, *extra: str, host: str = "127.0.0.1", name: str | None = "bot"
) -> list[str]:
    args = [sys.executable, "-m", "tcpchat", "join", host, "--port", str(port)]
    if name is not None:
        args += ["--name", name]
    return args + list(extra)


def run_join(
    args: list[str], env: dict[str, str], input_text: str = "", timeout: float = RUN_LIMIT
) -> subprocess.CompletedProcess[str]:
    """Run a join process to its end with `input_text` on a pipe; fail if it outlives `timeout`."""
    try:
        return subprocess.run(
            args,
            input=input_text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise AssertionError(
            f"join still running {timeout:g} s after its input ended; "
            f"stdout={exc.stdout!r} stderr={exc.stderr!r}"
        ) from None


@pytest.fixture
def popen(env: dict[str, str]) -> Iterator[Callable[[list[str]], subprocess.Popen[str]]]:
    """Start a join process whose stdin stays open; killed and reaped when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # stdin of a process that has gone: a broken pipe on flush


def wait_exit(process: subprocess.Popen[str], timeout: float = RUN_LIMIT) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a process that must end by itself (stdin left as it is)."""
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"join still running after {timeout:g} s") from None
    assert process.stdout is not None and process.stderr is not None
    return code, process.stdout.read(), process.stderr.read()


def send_input(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdin is not None
    process.stdin.write(text)
    process.stdin.flush()


def messages_until_left(member: LineClient, name: str = "bot") -> list[str]:
    """Texts of the messages `member` receives up to `name` leaving; checks they come from `name`."""
    texts = []
    while True:
        event = member.read_json()
        if event["type"] == "left" and event["name"] == name:
            assert event["reason"] == "quit", event
            return texts
        if event["type"] == "message":
            assert event["from"] == name, event
            texts.append(event["text"])


def readable_failure(stderr: str) -> list[str]:
    """The non-blank stderr lines, after checking there is no traceback among them."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines


def closed_port() -> int:
    """A loopback port with nothing listening (bound, read, closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- sending --------------------------------------------------------------------------------------


def test_each_input_line_arrives_as_a_message_in_order(
    chat: RunningServer, env: dict[str, str]
) -> None:
    alice = chat.join("alice")
    lines = [f"line {n}: héllo" for n in range(1, 21)]
    result = run_join(join_args(chat.port), env, "".join(f"{line}\n" for line in lines))
    assert result.returncode == 0, result.stderr
    assert alice.expect("joined")["name"] == "bot"
    assert messages_until_left(alice) == lines
    assert result.stderr == ""


def test_blank_lines_are_skipped(chat: RunningServer, env: dict[str, str]) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "first\n\n   \n\t\nsecond\n\n")
    assert result.returncode == 0, result.stderr
    alice.expect("joined")
    assert messages_until_left(alice) == ["first", "second"]


def test_crlf_input_lines_lose_their_carriage_return(
    chat: RunningServer, env: dict[str, str]
) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "one\r\ntwo\r\n")
    assert result.returncode == 0, result.stderr
    alice.expect("joined")
    assert messages_until_left(alice) == ["one", "two"]


def test_last_line_without_newline_is_sent(chat: RunningServer, env: dict[str, str]) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "one\nno newline at the end")
    assert result.returncode == 0, result.stderr
    alice.expect("joined")
    assert messages_until_left(alice) == ["one", "no newline at the end"]


def test_empty_input_joins_and_leaves_with_exit_0(chat: RunningServer, env: dict[str, str]) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "")
    assert result.returncode == 0, result.stderr
    assert alice.expect("joined")["name"] == "bot"
    assert alice.expect("left")["reason"] == "quit"


def test_stdout_starts_with_the_welcome(chat: RunningServer, env: dict[str, str]) -> None:
    chat.join("alice")
    result = run_join(join_args(chat.port), env, "hi\n")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "Welcome to testserver, bot!" in first
    assert "2 members" in first and "alice" in first


def test_name_from_tcpchat_name_variable(chat: RunningServer, env: dict[str, str]) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port, name=None), {**env, "TCPCHAT_NAME": "envbot"}, "x\n")
    assert result.returncode == 0, result.stderr
    assert alice.expect("joined")["name"] == "envbot"


def test_exits_0_only_after_every_line_is_acknowledged(
    chat: RunningServer, env: dict[str, str]
) -> None:
    result = run_join(join_args(chat.port, "--json"), env, "a\nb\nc\n")
    assert result.returncode == 0, result.stderr
    acks = [e for e in map(json.loads, result.stdout.splitlines()) if e["type"] == "ack"]
    assert sorted(ack["id"] for ack in acks) == ["1", "2", "3"]
    assert [ack["seq"] for ack in acks] == [1, 2, 3]


def test_json_output_is_the_server_events_starting_with_welcome(
    chat: RunningServer, env: dict[str, str]
) -> None:
    result = run_join(join_args(chat.port, "--json"), env, "hello\n")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "welcome"
    assert events[0]["name"] == "bot" and events[0]["server"] == "testserver"
    assert all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in events)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_messages_from_others_are_printed(
    as_json: bool,
    chat: RunningServer,
    popen: Callable[[list[str]], subprocess.Popen[str]],
) -> None:
    alice = chat.join("alice")
    bot = popen(join_args(chat.port, *(["--json"] if as_json else [])))
    send_input(bot, "ready\n")
    alice.expect("joined")
    assert alice.expect("message")["text"] == "ready"
    alice.send_json({"type": "say", "text": "hi from alice", "id": "a"})
    alice.expect("ack")
    # The bot's next line is acknowledged after alice's message reached it: it cannot end first.
    stdout, stderr = bot.communicate("done\n", timeout=RUN_LIMIT)
    assert bot.returncode == 0, stderr
    if as_json:
        events = [json.loads(line) for line in stdout.splitlines()]
        said = [e for e in events if e["type"] == "message"]
        assert [(e["from"], e["text"]) for e in said] == [("alice", "hi from alice")]
    else:
        assert any(line.endswith("alice: hi from alice") for line in stdout.splitlines()), stdout


# --- refused lines ------------------------------------------------------------------------------


def test_line_over_max_text_fails_with_reason_and_others_still_arrive(
    start_server: Callable[..., RunningServer], env: dict[str, str]
) -> None:
    chat = start_server(max_text=10)
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "short\n" + "x" * 11 + "\nlast\n")
    assert result.returncode != 0
    lines = readable_failure(result.stderr)
    assert any("too long" in line for line in lines), lines
    alice.expect("joined")
    assert messages_until_left(alice) == ["short", "last"]


def test_line_over_the_server_line_limit_fails_instead_of_hanging(
    chat: RunningServer, env: dict[str, str]
) -> None:
    """A line far past max_text (so its JSON passes the server's 16 KiB line limit) is still
    one refused message: the command must end, non-zero, and the next line must arrive."""
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "before\n" + "y" * 20_000 + "\nafter\n")
    assert result.returncode != 0
    readable_failure(result.stderr)
    alice.expect("joined")
    assert messages_until_left(alice) == ["before", "after"]


def test_line_with_a_control_character_is_refused_with_a_reason(
    chat: RunningServer, env: dict[str, str]
) -> None:
    alice = chat.join("alice")
    result = run_join(join_args(chat.port), env, "ok\nbell\x07here\nfine\n")
    assert result.returncode != 0
    readable_failure(result.stderr)
    alice.expect("joined")
    assert messages_until_left(alice) == ["ok", "fine"]


# --- could not join -----------------------------------------------------------------------------


def test_name_taken_exits_non_zero_and_says_why(chat: RunningServer, env: dict[str, str]) -> None:
    chat.join("bot")
    result = run_join(join_args(chat.port), env, "never sent\n")
    assert result.returncode != 0
    lines = readable_failure(result.stderr)
    assert "taken" in " ".join(lines)


def test_missing_name_without_a_terminal_is_a_usage_error(
    chat: RunningServer, env: dict[str, str]
) -> None:
    result = run_join(join_args(chat.port, name=None), env, "hi\n")
    assert result.returncode == 2
    assert "Usage:" in result.stderr and "--name" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_host_without_a_terminal_is_a_usage_error(env: dict[str, str]) -> None:
    result = run_join([sys.executable, "-m", "tcpchat", "join", "--name", "bot"], env, "hi\n")
    assert result.returncode == 2
    assert "Usage:" in result.stderr and "HOST" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_host_exits_1_with_one_line(env: dict[str, str]) -> None:
    # .invalid is reserved (RFC 2606): it never resolves.  A resolver may be slow to say so.
    result = run_join(join_args(1024, host="nohost.invalid"), env, "hi\n", timeout=6 * TIMEOUT)
    assert result.returncode == 1
    lines = readable_failure(result.stderr)
    assert len(lines) == 1, lines
    assert "nohost.invalid" in lines[0]


def test_connection_refused_exits_1_with_one_line(env: dict[str, str]) -> None:
    port = closed_port()
    result = run_join(join_args(port), env, "hi\n")
    assert result.returncode == 1
    lines = readable_failure(result.stderr)
    assert len(lines) == 1, lines
    assert "refused" in lines[0] and str(port) in lines[0]


def test_wrong_password_exits_1_saying_password(
    start_server: Callable[..., RunningServer], env: dict[str, str]
) -> None:
    chat = start_server(password="s3cret")
    result = run_join(join_args(chat.port, "--password", "wrong"), env, "hi\n")
    assert result.returncode == 1
    lines = readable_failure(result.stderr)
    assert len(lines) == 1, lines
    assert "password" in lines[0].lower()


def test_right_password_joins(
    start_server: Callable[..., RunningServer], env: dict[str, str]
) -> None:
    chat = start_server(password="s3cret")
    result = run_join(join_args(chat.port, "--password", "s3cret"), env, "hi\n")
    assert result.returncode == 0, result.stderr


def test_full_server_exits_1_saying_full(
    start_server: Callable[..., RunningServer], env: dict[str, str]
) -> None:
    chat = start_server(max_clients=1)
    chat.join("alice")
    result = run_join(join_args(chat.port), env, "hi\n")
    assert result.returncode == 1
    lines = readable_failure(result.stderr)
    assert len(lines) == 1, lines
    assert "full" in lines[0]


# --- losing the server --------------------------------------------------------------------------


def test_server_shutdown_mid_run_exits_non_zero_with_the_reason(
    chat: RunningServer, popen: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    alice = chat.join("alice")
    bot = popen(join_args(chat.port))
    send_input(bot, "first\n")
    alice.expect("joined")
    assert alice.expect("message")["text"] == "first"
    chat.stop()
    code, _, stderr = wait_exit(bot)  # its input is still open: only the server's end stops it
    assert code == 1, stderr  # not 134: a reader blocked on open input must not abort the exit
    lines = readable_failure(stderr)
    assert "shut" in " ".join(lines), lines
    assert "Fatal Python error" not in stderr


def test_server_vanishing_mid_run_exits_non_zero_with_the_reason(
    env: dict[str, str], popen: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    """A server that closes without a word (crash, reboot): the client says it lost it."""
    with fake_server(popen) as (bot, connection):
        connection.sendall(b"Welcome to tcpchat on fake! 0 members online. Enter your name:\n")
        hello = _read_line(connection)
        assert json.loads(hello)["type"] == "hello"
        welcome = {
            "type": "welcome", "name": "bot", "members": 1, "names": ["bot"],
            "server": "fake", "motd": None, "max_text": 1024, "version": 1, "history": [],
        }  # fmt: skip
        connection.sendall(json.dumps(welcome).encode() + b"\n")
        send_input(bot, "first\n")
        said = json.loads(_read_line(connection))
        assert said["type"] == "say" and said["text"] == "first"
        # closed here, without an ack: the bot owes one and has input still open
    code, _, stderr = wait_exit(bot)
    assert code != 0
    readable_failure(stderr)


@contextlib.contextmanager
def fake_server(
    popen: Callable[[list[str]], subprocess.Popen[str]], *extra: str
) -> Iterator[tuple[subprocess.Popen[str], socket.socket]]:
    """A listening socket standing in for a server (to misbehave on purpose), and a bot joining it
    (with `extra` options).

    Yields the bot's process and the accepted connection; both sockets close at the end.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(RUN_LIMIT)
        bot = popen(join_args(listener.getsockname()[1], *extra))
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(TIMEOUT)
            yield bot, connection


def _read_line(connection: socket.socket) -> bytes:
    """One line from a raw socket, within the socket's timeout per read and a bounded size."""
    data = b""
    while b"\n" not in data:
        chunk = connection.recv(4096)
        assert chunk, f"closed early; have {data!r}"
        data += chunk
        assert len(data) < 64 * 1024
    return data.split(b"\n", 1)[0]


def test_version_mismatch_exits_1_with_one_line(
    env: dict[str, str], popen: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    """A server of another protocol version refuses `hello`: one readable line, exit 1."""
    with fake_server(popen) as (bot, connection):
        connection.sendall(b"Welcome to a future tcpchat! Enter your name:\n")
        assert json.loads(_read_line(connection))["type"] == "hello"
        refusal = {
            "type": "error",
            "code": "version_unsupported",
            "message": "This server speaks protocol version 2, not 1.",
        }
        connection.sendall(json.dumps(refusal).encode() + b"\n")
    code, _, stderr = wait_exit(bot)
    assert code == 1
    assert "version 2" in " ".join(readable_failure(stderr))


def test_a_servers_words_cannot_drive_the_terminal_through_stderr(
    env: dict[str, str], popen: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    """A hostile server's refusal with an OSC title sequence and a bell: shown without them."""
    with fake_server(popen) as (bot, connection):
        connection.sendall(b"Welcome!\n")
        assert json.loads(_read_line(connection))["type"] == "hello"
        refusal = {"type": "error", "code": "bad_name", "message": "\x1b]0;PWNED\x07red"}
        connection.sendall(json.dumps(refusal).encode() + b"\n")
    code, _, stderr = wait_exit(bot)
    assert code == 1
    assert "\x1b" not in stderr and "\x07" not in stderr
    assert "PWNED" in stderr  # the words stay, made harmless


# C1 controls (CSI, NEL), a bidi override and an isolate, and DEL: JSON lets them through raw.
HOSTILE_TEXT = "a\x9b31mb\x85c\u202egnp.exe\u2066d\x7fe"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_hostile_servers_controls_are_escaped_in_either_output(
    as_json: bool, env: dict[str, str], popen: Callable[[list[str]], subprocess.Popen[str]]
) -> None:
    """Text mode shows them as U+FFFD; JSON mode as \\u escapes, so each line is still valid
    JSON that decodes to exactly what the server sent."""
    with fake_server(popen, *(["--json"] if as_json else [])) as (bot, connection):
        connection.sendall(b"Welcome!\n")
        assert json.loads(_read_line(connection))["type"] == "hello"
        welcome = {
            "type": "welcome", "name": "bot", "members": 2, "names": ["bot", "eve"],
            "server": "fake", "motd": HOSTILE_TEXT, "max_text": 1024, "version": 1,
            "history": [],
        }  # fmt: skip
        connection.sendall(json.dumps(welcome).encode() + b"\n")
        send_input(bot, "hi\n")
        said = json.loads(_read_line(connection))
        ts = "2026-11-24T09:30:00.123Z"
        message = {"type": "message", "seq": 1, "from": "eve", "text": HOSTILE_TEXT, "ts": ts}
        ack = {"type": "ack", "id": said["id"], "seq": 2, "ts": ts, "delivered": 2}
        connection.sendall(b"".join(json.dumps(e).encode() + b"\n" for e in (message, ack)))
        assert bot.stdin is not None
        bot.stdin.close()
        code, stdout, stderr = wait_exit(bot)
    assert code == 0, stderr
    assert not any(0x7F <= ord(c) <= 0x9F or c in "\u202e\u2066" for c in stdout), ascii(stdout)
    if as_json:
        events = [json.loads(line) for line in stdout.splitlines()]
        assert events[0]["motd"] == HOSTILE_TEXT
        assert [e["text"] for e in events if e["type"] == "message"] == [HOSTILE_TEXT]
    else:
        assert "eve: a\ufffd31mb\ufffdc\ufffdgnp.exe\ufffdd\ufffde" in stdout, ascii(stdout)


def test_history_and_results_print_as_text_lines_or_as_the_servers_json() -> None:
    said = Message(seq=3, sender="bob", text="waves", ts=datetime.now(timezone.utc), me=True)
    events = [HistoryPage(messages=[said], more=False, id="1"), Results(messages=[], id="2")]
    text, as_json = io.StringIO(), io.StringIO()
    for out, json_mode in ((text, False), (as_json, True)):
        session = ScriptSession(None, as_json=json_mode, out=out, err=io.StringIO())  # type: ignore[arg-type]
        for event in events:
            session.show(event)
    lines = text.getvalue().splitlines()
    assert lines[0] == "* --- earlier messages ---" and lines[1].endswith("* bob waves")
    assert lines[-1] == "* --- nothing found ---"
    page, results = (json.loads(line) for line in as_json.getvalue().splitlines())
    assert (page["type"], page["messages"][0]["me"], results["type"]) == (
        "history",
        True,
        "results",
    )
