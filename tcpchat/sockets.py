"""Operating-system details of listening and connected sockets, each behind a portability check.

Binding (one port for IPv4 and IPv6), TCP keepalive, and the open-files limit differ between
Linux, macOS and Windows; this module hides that so the server reads the same everywhere.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import sys

if sys.platform.startswith("linux"):
    # Imported here, not when first needed: a process out of descriptors cannot load a module.
    import fcntl
    import termios

# Probe a dead peer after a minute of silence, then every 15 s, giving up after 4 probes.
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT = 4
LISTEN_BACKLOG = 1024
# SO_LINGER on, with a zero timeout: close() resets the connection (struct linger; u_short on Windows).
_RESET_ON_CLOSE = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
WANTED_OPEN_FILES = 65536
_SO_NWRITE = 0x1024  # macOS: bytes in the send buffer, kept there until the peer acknowledges


def bind_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for `host` (None: every interface, IPv6 and IPv4) on one port.

    With port 0 the first socket picks the port and the others take the same one, so the banner can
    name a single port (asyncio's own start_server may pick a different port per family).
    """
    if host is None or host in ("", "*"):
        dual = _dual_stack_socket(port)
        if dual is not None:
            return [dual]
        host = "0.0.0.0"
    infos = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            if sockets:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            _prepare_listener(sock)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sockets.append(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _dual_stack_socket(port: int) -> socket.socket | None:
    """One `[::]` socket that takes IPv4 too, or None where the OS has no IPv6."""
    if not socket.has_ipv6 or not hasattr(socket, "IPV6_V6ONLY"):
        return None
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        _prepare_listener(sock)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise
        return None
    return sock


def _prepare_listener(sock: socket.socket) -> None:
    if sys.platform == "win32":
        # On Windows SO_REUSEADDR lets a second server steal the port; exclusive use is the default we want.
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setblocking(False)


def enable_keepalive(sock: socket.socket) -> None:
    """Turn on TCP keepalive so a peer that vanished without a FIN is found and dropped."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux, recent Windows and macOS
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        elif hasattr(socket, "TCP_KEEPALIVE"):  # older macOS
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, KEEPALIVE_IDLE)
        if hasattr(socket, "TCP_KEEPINTVL"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        if hasattr(socket, "TCP_KEEPCNT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
    except OSError:
        pass  # keepalive is a help, not a requirement: a socket without it still works


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> tuple[int | None, str | None]:
    """Raise the soft open-files limit toward `wanted` so thousands of members fit.

    Returns (the limit now, or None where there is none to read; a sentence when it stayed low).
    """
    try:
        import resource  # POSIX only
    except ImportError:
        return None, None  # Windows: no per-process soft limit of this kind
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # macOS refuses more than its per-process maximum (often 10240) even under an infinite hard
    # limit, so fall back step by step.
    for target in (wanted, 10240, 4096):
        if hard != resource.RLIM_INFINITY:
            target = min(target, hard)
        if soft == resource.RLIM_INFINITY or soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            continue
        soft = target
        break
    if soft != resource.RLIM_INFINITY and soft < 4096:
        return soft, (
            f"the open-files limit is {soft}, so at most about {max(soft - 32, 1)} members "
            "fit (raise it with 'ulimit -n')"
        )
    return (None if soft == resource.RLIM_INFINITY else soft), None


def format_address(address: object) -> str:
    """`host:port` for a peer or socket address, IPv6 in brackets, IPv4-mapped shown as IPv4."""
    if not isinstance(address, tuple) or len(address) < 2:
        return str(address)
    host, port = str(address[0]), address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def unacknowledged(sock: socket.socket) -> int | None:
    """Bytes sent to the peer (the end of stream included) that it has not acknowledged yet;
    None where the system cannot tell (Windows)."""
    try:
        if sys.platform.startswith("linux"):
            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)  # SIOCOUTQ
            return int(struct.unpack("i", queued)[0])
        if sys.platform == "darwin":
            return sock.getsockopt(socket.SOL_SOCKET, _SO_NWRITE)
    except (OSError, ValueError):
        return 0  # no longer connected: nothing more will arrive
    return None


def reset_socket(sock: socket.socket) -> None:
    """Make closing `sock` (by us, or by the transport that owns it) a TCP reset."""
    try:
        if sock.fileno() >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    except OSError:
        pass  # not connected any more: its close sends nothing anyway


def reset(transport: asyncio.WriteTransport) -> None:
    """Cut a connection with a TCP reset, dropping what the kernel still holds for the peer.

    asyncio's `abort()` alone only closes the socket: the kernel then goes on, for minutes,
    trying to deliver what it had already accepted (megabytes, for a peer that stopped reading)
    to a connection nobody owns any more.
    """
    try:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    except (OSError, ValueError, AttributeError):
        # Already closed: uvloop's socket has no descriptor left; asyncio's TLS transport, once
        # closed, has no protocol to ask.  Nothing is left to drop then.
        pass
    try:
        transport.abort()
    except AttributeError:  # asyncio's TLS transport, closed already
        pass
