"""A blocking line client over a real socket, for tests: every read has a deadline."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable
from typing import Any


class LineClient:
    """Send and read `\\n`-terminated lines; JSON helpers on top."""

    def __init__(self, host: str, port: int, timeout: float, source: str | None = None) -> None:
        """Connect to `host`:`port`, from the local address `source` if one is given."""
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=None if source is None else (source, 0)
        )
        self._buffer = b""
        self.closed = False

    # --- sending ---------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, text: str) -> None:
        self.send_raw(text.encode() + b"\n")

    def send_json(self, obj: dict[str, Any]) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    # --- reading ---------------------------------------------------------------------------------

    def read_line(self, timeout: float | None = None) -> str:
        """The next line without its `\\n`; AssertionError when none comes in time or at EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line within the deadline; have {self._buffer[:200]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"connection closed; have {self._buffer[:200]!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_json(self, timeout: float | None = None) -> dict[str, Any]:
        obj = json.loads(self.read_line(timeout))
        assert isinstance(obj, dict)
        return obj

    def expect(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        """The next JSON event, which must be of `type` `kind`."""
        obj = self.read_json(timeout)
        assert obj["type"] == kind, obj
        return obj

    def read_until(self, matches: Callable[[str], bool], timeout: float | None = None) -> list[str]:
        """Lines up to and including the first that `matches`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            line = self.read_line(max(0.01, deadline - time.monotonic()))
            lines.append(line)
            if matches(line):
                return lines

    def read_eof(self, timeout: float | None = None) -> bytes:
        """Everything up to the server's close; AssertionError if it stays open."""
        data, self._buffer = self._buffer, b""
        return data + recv_until_closed(self.sock, timeout or self.timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0): the server drops the connection at once,
        where a FIN from a plain-mode member would have it show its last words for a moment."""
        if not self.closed:
            with contextlib.suppress(OSError):  # already reset by the server: close it all the same
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close()


def recv_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """What `sock` receives until the peer closes or resets it; AssertionError after `timeout`."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the server did not close the connection")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def kernel_sockets(local_port: int) -> list[tuple[int, int, int]]:
    """(remote port, TCP state, bytes queued to send) of every IPv4 socket on `local_port`, as
    the kernel lists them (Linux), orphans included: the sockets a process closed but the
    kernel still holds."""
    rows = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == local_port:
                remote_port = int(fields[2].split(":")[1], 16)
                rows.append((remote_port, int(fields[3], 16), int(fields[4].split(":")[0], 16)))
    return rows
