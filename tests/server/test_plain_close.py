"""How a plain connection (a person on nc or telnet) ends: at once, once the goodbye has arrived.

nc does not exit at the end of the stream (it waits for something to send); a reset after our
last words were acknowledged ends it.  The server's grace for closing connections is set to a
minute here, so that a connection left to it would fail these tests.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from support import TIMEOUT
from support.running import RunningServer

import tcpchat.server.member

StartServer = Callable[..., RunningServer]
NC = shutil.which("nc")


@pytest.fixture
def server(start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setattr(tcpchat.server.member, "CLOSE_GRACE", 60.0)
    return start_server()


def connections(server: RunningServer) -> int:
    return int(server.call(lambda: len(server.server.connections)))  # type: ignore[union-attr]


def wait_until_gone(server: RunningServer, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while connections(server) > count:
        assert time.monotonic() < deadline, "the server kept the connection open"
        time.sleep(0.02)  # polling the server's state, with a deadline


def kick(server: RunningServer, name: str) -> None:
    def run() -> None:
        assert server.server is not None
        member = server.server.member(name)
        assert member is not None
        server.server.kick(member, "test")

    server.call(run)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["quit", "kick"])
def test_a_plain_connection_is_closed_once_the_goodbye_has_arrived(
    server: RunningServer, how: str
) -> None:
    watcher = server.join("watcher")
    carol = server.join_plain("carol")
    watcher.expect("joined")
    if how == "quit":
        carol.send_line("/quit")
    else:
        kick(server, "carol")
    lines = []
    try:
        while True:
            lines.append(carol.read_line())
    except (AssertionError, ConnectionResetError):
        pass  # the end of the stream, then a reset
    assert lines and lines[-1].startswith(("* Goodbye", "! You were removed")), lines
    wait_until_gone(server, 1)


@pytest.fixture
def nc_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.slow
@pytest.mark.skipif(NC is None, reason="nc is not installed")
@pytest.mark.parametrize("how", ["quit", "kick", "shutdown"])
def test_nc_exits_by_itself_once_the_goodbye_has_arrived(
    server: RunningServer, nc_processes: list[subprocess.Popen[bytes]], how: str
) -> None:
    """nc with its input still open (a person who has not pressed Ctrl-D) ends by itself."""
    assert NC is not None
    watcher = server.join("watcher")
    nc = subprocess.Popen(
        [NC, "127.0.0.1", str(server.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    nc_processes.append(nc)
    assert nc.stdin is not None and nc.stdout is not None
    nc.stdin.write(b"carol\n")
    nc.stdin.flush()
    assert watcher.expect("joined")["name"] == "carol"
    if how == "quit":
        nc.stdin.write(b"/quit\n")
        nc.stdin.flush()
    elif how == "kick":
        kick(server, "carol")
    else:
        server.stop()
    assert nc.wait(TIMEOUT) == 0
    last = nc.stdout.read().decode().splitlines()[-1]
    assert last.startswith(("* Goodbye", "! You were removed", "* The server")), last
