"""The client connection (tcpchat.client.connection) without a UI: keepalive and readable connect errors."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from support import TIMEOUT
from support.running import RunningServer

from tcpchat.client.connection import (
    ChatConnection,
    ChatError,
    ConnectionLost,
    describe_connect_error,
    split_address,
)
from tcpchat.protocol import Ack, Pong, Say, Welcome


def test_keepalive_keeps_a_live_connection_open(chat: RunningServer) -> None:
    """Pings answered by a real server: after several rounds the connection is still open."""

    async def scenario() -> int:
        connection = await ChatConnection.open("127.0.0.1", chat.port)
        await connection.join("alice")
        keepalive = asyncio.ensure_future(connection.keepalive(interval=0.02, grace=TIMEOUT))
        pongs = 0

        async def count_pongs() -> None:
            nonlocal pongs
            while pongs < 5:
                pongs += isinstance(await connection.next_event(), Pong)

        try:
            await asyncio.wait_for(count_pongs(), TIMEOUT)
            assert not connection.is_closed
        finally:
            keepalive.cancel()
            await connection.close()
        return pongs

    assert asyncio.run(scenario()) == 5


def test_keepalive_drops_a_server_that_stops_answering() -> None:
    """A server that takes the connection but never answers `ping`: lost within the grace."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        accepting = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
        accepting.start()

        async def scenario() -> None:
            connection = await ChatConnection.open("127.0.0.1", port)
            keepalive = asyncio.ensure_future(connection.keepalive(interval=0.01, grace=0.05))
            try:

                async def read_forever() -> None:
                    while True:
                        await connection.next_event()

                with pytest.raises(ConnectionLost):
                    await asyncio.wait_for(read_forever(), TIMEOUT)
            finally:
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)
            assert connection.is_closed

        try:
            asyncio.run(scenario())
        finally:
            accepting.join(TIMEOUT)
            for sock in accepted:
                sock.close()


def test_join_returns_the_welcome(chat: RunningServer) -> None:
    async def scenario() -> Welcome:
        connection = await ChatConnection.open("127.0.0.1", chat.port)
        try:
            return await connection.join("alice")
        finally:
            await connection.close()

    welcome = asyncio.run(scenario())
    assert welcome.name == "alice"
    assert welcome.members == 1


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (socket.gaierror(-2, "Name or service not known"), "cannot find the host"),
        (ConnectionRefusedError(111, "Connection refused"), "refused the connection"),
        (TimeoutError(), "did not answer"),
        (OSError(113, "No route to host"), "no route to host"),
    ],
)
def test_connect_errors_read_as_one_sentence(error: BaseException, words: str) -> None:
    sentence = describe_connect_error("example.test", 1024, error)
    assert words in sentence
    assert sentence.endswith((".", "?"))
    assert "\n" not in sentence


def test_opening_a_closed_port_raises_a_readable_chat_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ChatError, match="refused the connection"):
        asyncio.run(ChatConnection.open("127.0.0.1", port))


@pytest.mark.slow
def test_keepalive_counts_a_busy_server_as_alive(chat: RunningServer) -> None:
    """A backlog of our own lines delays the `pong` (the server answers lines in order, slowed
    to its rate), but the acks arriving meanwhile prove the server alive: no cut."""
    lines = 100  # 40 past the burst of 60: about 2 s at 20 lines a second

    async def scenario() -> int:
        connection = await ChatConnection.open("127.0.0.1", chat.port)
        await connection.join("bulk")
        keepalive = asyncio.ensure_future(connection.keepalive(interval=0.2, grace=0.3))
        acks = 0

        async def count_acks() -> None:
            nonlocal acks
            while acks < lines:
                acks += isinstance(await connection.next_event(), Ack)

        try:
            for n in range(lines):
                await connection.send(Say(text=f"line {n}", id=str(n)))
            await asyncio.wait_for(count_acks(), 10 * TIMEOUT)
            assert not connection.is_closed
        finally:
            keepalive.cancel()
            await connection.close()
        return acks

    assert asyncio.run(scenario()) == lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chat.example.org", ("chat.example.org", None)),
        ("chat.example.org:4000", ("chat.example.org", 4000)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("::1", ("::1", None)),  # a bare IPv6 address is a host, its last group no port
        ("fe80::1:4000", ("fe80::1:4000", None)),
        ("[::1]", ("::1", None)),
        ("[::1]:65535", ("::1", 65535)),
        ("[2001:db8::7]:4000", ("2001:db8::7", 4000)),
        (" localhost:4000 ", ("localhost", 4000)),
    ],
)
def test_host_and_port_are_read_as_people_write_them(
    text: str, expected: tuple[str, int | None]
) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("chat.example.org:", "not a port"),
        ("chat.example.org:http", "not a port"),
        ("chat.example.org:0", "not a port"),
        ("chat.example.org:65536", "not a port"),
        (":4000", "no host"),
        ("[::1", "no ]"),
        ("[]:4000", "no host"),
        ("[::1]4000", "after ]"),
        ("[::1]:x", "not a port"),
    ],
)
def test_a_host_and_port_that_cannot_be_read_say_why(text: str, words: str) -> None:
    with pytest.raises(ValueError) as raised:
        split_address(text)
    message = str(raised.value)
    assert words in message and message.endswith(".") and "\n" not in message, message
