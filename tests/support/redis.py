"""A real `redis-server` for the cluster's tests: on 127.0.0.1 and a free port, in a folder of the
test's, writing every change to its append-only file before it answers (`appendfsync always`, as a
Redis that holds acknowledged messages must); it can be killed and started again on the same port
and file (Redis going away and coming back mid-burst)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import TIMEOUT
from support.process import Process, clean_env, free_port

NO_REDIS = "redis-server is not installed (Debian: apt-get install redis-server)"


def redis_server_program() -> str:
    """The `redis-server` to run, or skip the test with the reason."""
    program = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if program is None:
        pytest.skip(NO_REDIS)
    return program


@dataclass
class RedisServer:
    """One `redis-server` process; `url` is what `tcpchat serve --cluster` takes."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        program = redis_server_program()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
             "--protected-mode", "no"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 3 * TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it (SIGKILL): what it acknowledged is in its append-only file for `start()`."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.kill()
        process.wait(TIMEOUT)


LISTENING = re.compile(r"port (\d+)")


@contextlib.contextmanager
def serving_processes(
    redis: RedisServer, folder: Path, names: Sequence[str], *options: str
) -> Iterator[list[tuple[Process, int]]]:
    """Real `tcpchat serve --cluster` processes on 127.0.0.1, one per name (`options` added to
    each command line): each with its port, stopped at the end (a stopped one is let go on)."""
    processes: list[tuple[Process, int]] = []
    try:
        for name in names:
            process = Process(
                [sys.executable, "-m", "tcpchat", "serve", "--host", "127.0.0.1", "--port", "0",
                 "--name", name, "--cluster", redis.url, *options],
                clean_env(folder / name),
            )  # fmt: skip
            listening = LISTENING.search(process.wait_for_line(LISTENING.search, 3 * TIMEOUT))
            assert listening is not None
            processes.append((process, int(listening.group(1))))
        yield processes
    finally:
        for process, _ in processes:
            if hasattr(signal, "SIGCONT") and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGCONT)  # a test may have stopped it
            process.stop()
