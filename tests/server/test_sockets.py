"""Operating-system details: one port for every listening socket, addresses, the files limit."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tcpchat.sockets import bind_sockets, format_address


def test_every_interface_with_port_0_gives_one_port() -> None:
    listeners = bind_sockets(None, 0)
    try:
        ports = {sock.getsockname()[1] for sock in listeners}
        assert len(ports) == 1
        port = ports.pop()
        assert port != 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for sock in listeners:
            sock.close()


def test_a_name_with_several_addresses_binds_them_all_on_one_port() -> None:
    listeners = bind_sockets("localhost", 0)
    try:
        assert listeners
        assert len({sock.getsockname()[1] for sock in listeners}) == 1
    finally:
        for sock in listeners:
            sock.close()


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", 1024), "127.0.0.1:1024"),
        (("::1", 1024, 0, 0), "[::1]:1024"),
        (("::ffff:192.0.2.7", 5000, 0, 0), "192.0.2.7:5000"),
        ("/tmp/sock", "/tmp/sock"),
    ],
)
def test_addresses_read_as_host_and_port(address: object, shown: str) -> None:
    assert format_address(address) == shown


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
def test_a_low_open_files_limit_is_raised_or_reported() -> None:
    """Started with a soft limit of 256, the server raises it, or says why it could not."""
    code = (
        "import resource\n"
        "from tcpchat.sockets import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "limit, note = raise_open_file_limit()\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(hard, now, note)\n"
        "assert now == limit\n"
        "assert now > 256 or note\n"
        "assert (note is None) == (now >= 4096)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
