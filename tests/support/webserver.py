"""A real `tcpchat serve --web` process for the web client's tests: its TCP port for line
clients, its web port for pages and WebSockets, its history in a file so that it can be
restarted (same ports, same file) as a person would restart it."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support import TIMEOUT
from support.process import Process, clean_env, free_port
from support.wire import LineClient


@dataclass
class WebServer:
    """`tcpchat serve --web` on 127.0.0.1, with no rate or per-address limits (every test client
    comes from 127.0.0.1) unless `extra` options set them."""

    folder: Path
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    web: int = field(default_factory=free_port)
    process: Process | None = None
    clients: list[LineClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The chat page, as the welcome prints it and a person opens it."""
        return f"http://127.0.0.1:{self.web}/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.web}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web}/ws"

    def start(self) -> WebServer:
        args = [sys.executable, "-m", "tcpchat", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--web", str(self.web)]
        args += ["--db", str(self.folder / "history.sqlite3")]
        args += ["--rate", "0", "--byte-rate", "0", "--max-per-address", "0"]
        args += ["--connect-rate", "0", *self.extra]
        self.process = Process(args, clean_env(self.folder))
        self.process.wait_for_line(lambda line: "Press Ctrl-C" in line, 3 * TIMEOUT)
        return self

    def stop(self) -> None:
        """Stop as Ctrl-C does (members are told `shutdown`), killed if it does not end in time."""
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGINT)
                process.wait(3 * TIMEOUT)
        finally:
            process.stop()

    def close(self) -> None:
        """Stop the server and close every line client the test opened."""
        try:
            self.stop()
        finally:
            for client in self.clients:
                client.close()

    def join(self, name: str) -> LineClient:
        """A JSON member on the TCP port, past its `welcome`."""
        client = self._connect()
        client.send_json({"type": "hello", "name": name, "version": 1})
        assert client.expect("welcome")["name"] == name
        return client

    def join_plain(self, name: str) -> LineClient:
        """A plain-mode member, as a person on `nc` is, past the server's greeting."""
        client = self._connect()
        client.send_line(name)
        client.read_until(lambda line: line.startswith("* Type /help"))
        return client

    def _connect(self) -> LineClient:
        """A connection to the TCP port, past its banner; closed by `close`."""
        client = LineClient("127.0.0.1", self.port, TIMEOUT)
        self.clients.append(client)
        client.read_line()
        return client
