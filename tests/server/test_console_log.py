"""`--log-file` of a real `tcpchat serve`: its start, every kind of refusal, and its stop.

The members come from different loopback addresses (127.0.0.2, 127.0.0.3, ...: Linux routes all
of 127/8 to the loopback), so that each refusal is the first of its address.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TIMEOUT
from support.chat import expect_error, hello
from support.process import LISTENING, Process, clean_env
from support.wire import LineClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="connects from 127.0.0.2 and the like"),
]

PASSWORD = "s3cret"


def serve_command(*options: str) -> list[str]:
    """`tcpchat serve` called t, on 127.0.0.1, with its history in memory."""
    serve = ["serve", "--host", "127.0.0.1", "--name", "t", "--memory"]
    return [sys.executable, "-m", "tcpchat", *serve, *options]


@pytest.fixture
def connections() -> Iterator[list[LineClient]]:
    opened: list[LineClient] = []
    yield opened
    for client in opened:
        client.close()


def test_the_log_file_records_the_start_every_refusal_and_the_stop(
    tmp_path: Path, connections: list[LineClient]
) -> None:
    log_file = tmp_path / "server.log"
    limits = ["--password", PASSWORD, "--max-clients", "1", "--max-per-address", "3"]
    process = Process(
        serve_command("--port", "0", "--log-file", str(log_file), *limits),
        clean_env(tmp_path / "config"),
        stdin=subprocess.PIPE,
    )
    try:
        line = process.wait_for_line(lambda line: LISTENING.search(line) is not None)
        port = int(LISTENING.search(line).group(1))  # type: ignore[union-attr]

        def connect(source: str) -> LineClient:
            client = LineClient("127.0.0.1", port, TIMEOUT, source=source)
            connections.append(client)
            return client

        def join(source: str, name: str, password: str = PASSWORD) -> LineClient:
            client = connect(source)
            client.read_line()  # the banner
            client.send_json(hello(name, password=password))
            return client

        join("127.0.0.2", "alice").expect("welcome")  # the server is full now
        expect_error(join("127.0.0.3", "bob"), "server_full")

        for _ in range(3):
            connect("127.0.0.4").read_line()  # the banner: its connections are open
        assert connect("127.0.0.4").read_line().startswith("! Too many connections")

        for _ in range(5):
            guess = join("127.0.0.5", "mallory", password="guess")
            expect_error(guess, "auth_failed")
            guess.close()  # so that its address is not over --max-per-address
        assert connect("127.0.0.5").read_line().startswith("! Too many wrong passwords")

        process.type("/ban 127.0.0.6\n")
        process.wait_for_line(lambda line: line.startswith("Banned 127.0.0.6"))
        assert connect("127.0.0.6").read_line().startswith("! Your address is banned")

        process.popen.send_signal(signal.SIGINT)
        assert process.wait(3 * TIMEOUT) == 0
    finally:
        process.stop()

    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert re.search(r"tcpchat server 't' started .* listening on 127\.0\.0\.1:\d+", lines[0])
    refusals = [line for line in lines if "refused" in line]
    assert [re.sub(r".*refused (\d+\.\d+\.\d+\.\d+):\d+: ", r"\1 ", line) for line in refusals] == [
        "127.0.0.3 The server is full (1 member); try later.",
        "127.0.0.4 Too many connections from your address (at most 3); close one first.",
        "127.0.0.5 Too many wrong passwords from your address; try again in 60 seconds.",
        "127.0.0.6 Your address is banned from this server.",
    ], lines
    assert "server stopping" in lines[-2]
    assert re.search(r"tcpchat server 't' stopped", lines[-1]), lines
    # The welcome goes to the console only, the start and the stop lines to the file only.
    assert not any("started" in line or "stopped" in line for line in process.out), process.out


def test_the_log_file_says_why_the_server_could_not_start(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = Process(
            serve_command("--port", str(port), "--log-file", str(log_file)),
            clean_env(tmp_path / "config"),
        )
        try:
            assert process.wait(3 * TIMEOUT) == 1
        finally:
            process.stop()
    said = (
        f"127.0.0.1 port {port} is already in use; stop the other server or choose another --port."
    )
    assert process.err == [f"Error: {said}"]
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"tcpchat server 't' could not start: {said}")
