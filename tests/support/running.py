"""A real tcpchat server on loopback, in a thread and event loop of its own, for tests to talk to."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from support import TIMEOUT
from support.wire import LineClient
from tcpchat.server.chat_server import ChatServer, serve
from tcpchat.server.config import ServerConfig


@dataclass
class RunningServer:
    """A server running in its own thread and event loop, on 127.0.0.1 and a free port."""

    config: ServerConfig
    event_loop: str = "asyncio"  # or "uvloop"
    server: ChatServer | None = None
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None
    clients: list[LineClient] = field(default_factory=list)
    _started: threading.Event = field(default_factory=threading.Event)
    _stop: asyncio.Event | None = None

    def start(self) -> RunningServer:
        self.thread = threading.Thread(target=self._run, name="tcpchat-server", daemon=True)
        self.thread.start()
        if not self._started.wait(TIMEOUT):
            raise RuntimeError("the server did not start")
        if self.error:
            raise self.error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def started(server: ChatServer) -> None:
                self.server = server
                self.port = server.ports[0]
                self._started.set()

            await serve(self.config, self._stop.wait, started)

        try:
            if self.event_loop == "uvloop":
                import uvloop

                uvloop.run(main())
            else:
                asyncio.run(main())
        except BaseException as exc:  # reported to the test by start() or stop()
            self.error = exc
        finally:
            self._started.set()

    def stop(self) -> None:
        """Stop as Ctrl-C would (members told and flushed); fail if it takes too long.

        The test is done with its clients: they are reset first, so that the server does not
        spend its goodbye on them (tests of the goodbye itself use clients of their own)."""
        for client in self.clients:
            client.reset()
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop already ended
        assert self.thread is not None
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the server did not stop"
        if self.error:
            raise self.error

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the server's loop (to read its state safely) and return its result."""
        assert self.loop is not None
        done = threading.Event()
        result: list[Any] = []

        def run() -> None:
            result.append(function())
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(TIMEOUT)
        return result[0]

    def connect(self, host: str = "127.0.0.1") -> LineClient:
        """A raw socket client, read as lines; closed when the test ends."""
        client = LineClient(host, self.port, TIMEOUT)
        self.clients.append(client)
        return client

    def join(self, name: str, host: str = "127.0.0.1") -> LineClient:
        """A JSON-mode client that has read its banner and its `welcome`."""
        client = self.connect(host)
        client.read_line()  # the banner
        client.send_json({"type": "hello", "name": name, "version": 1})
        welcome = client.expect("welcome")
        assert welcome["name"] == name
        return client

    def join_plain(self, name: str) -> LineClient:
        """A plain-mode client (as nc) that has chosen its name and read the greeting."""
        client = self.connect()
        client.read_line()
        client.send_line(name)
        client.read_until(lambda line: "/help" in line)
        return client


def both_event_loops(request: pytest.FixtureRequest) -> str:
    """For a `server_loop` fixture with params asyncio and uvloop: uvloop where installed."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed here")
    return str(request.param)
