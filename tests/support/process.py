"""Real `tcpchat` processes for tests: their output gathered by threads, waited on with deadlines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import TIMEOUT

# What `tcpchat serve` prints once it listens, with the port it got.
LISTENING = re.compile(r"Listening on .*, port (\d+)\.")


def clean_env(config_dir: Path) -> dict[str, str]:
    """The test's environment without any TCPCHAT_ setting of the person running the tests."""
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("TCPCHAT_", "_TCPCHAT"))
    }
    env["TCPCHAT_CONFIG_DIR"] = str(config_dir)
    # Output must reach a pipe promptly by itself, not thanks to the tester's environment.
    env.pop("PYTHONUNBUFFERED", None)
    return env


class Process:
    """A subprocess whose stdout and stderr lines are gathered by threads, to wait on with deadlines."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        stdin: int = subprocess.DEVNULL,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.popen = subprocess.Popen(
            args,
            stdin=stdin,
            preexec_fn=preexec_fn,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._open = 2
        self._threads = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, into: list[str]) -> None:
        try:
            for line in stream:
                with self._changed:
                    into.append(line.rstrip("\r\n"))
                    self._changed.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._changed:
                self._open -= 1
                self._changed.notify_all()

    def wait_for_line(self, matches: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """The first stdout line that `matches`; AssertionError if none comes in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.out:
                    if matches(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._open == 0:
                    raise AssertionError(
                        f"no matching line; stdout={self.out!r} stderr={self.err!r}"
                    )
                self._changed.wait(remaining)

    def type(self, text: str) -> None:
        """Write to the process's standard input (started with stdin=subprocess.PIPE)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()

    def wait(self, timeout: float) -> int:
        """The exit code; AssertionError if the process is still running after `timeout`."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running after {timeout:g} s; stdout={self.out!r} stderr={self.err!r}"
            ) from None
        self._join_readers()
        return code

    def _join_readers(self) -> None:
        for thread in self._threads:
            thread.join(TIMEOUT)

    def stop(self) -> None:
        self.close_stdin()
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(TIMEOUT)
        finally:
            self._join_readers()
            for stream in (self.popen.stdout, self.popen.stderr):
                if stream is not None:
                    stream.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_prints(code: str, folder: Path) -> str:
    """What a fresh Python prints running `code` (in a clean environment with its config in
    `folder`); the test fails with its error output if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env=clean_env(folder),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
