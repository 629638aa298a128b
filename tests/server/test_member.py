"""One connection served against a hub of the test's own (tcpchat.server.member), over loopback.

A member knows the server only through `Hub`: here a small recording hub stands where
`ChatServer` stands, and the member reads, answers and ends as it does in a real server.
"""

from __future__ import annotations

import asyncio
import json

from support import TIMEOUT

from tcpchat.protocol import (
    Event,
    Hello,
    Invalid,
    LeaveReason,
    Pong,
    ServerCodec,
)
from tcpchat.server.config import ServerConfig
from tcpchat.server.fanout import Fanout, Recipient
from tcpchat.server.flood import FloodControl
from tcpchat.server.member import Member
from tcpchat.server.room import Room


class RecordingHub:
    """A hub that keeps what its member hands it and answers every hello with a pong."""

    stopping = False

    def __init__(self) -> None:
        self.events: list[Event | Invalid] = []
        self.left: list[LeaveReason] = []

    def room_size(self, member: Member) -> int:
        return 7

    def has_joined(self, member: Member) -> bool:
        return False

    def name_of(self, member: Member) -> str | None:
        return None

    def handle(self, member: Member, event: Event | Invalid) -> None:
        self.events.append(event)
        if isinstance(event, Hello):
            member.send(Pong(id=event.name))

    def leave(self, member: Member, reason: LeaveReason) -> None:
        self.left.append(reason)

    def tell(self, member: Member, text: str) -> None:
        raise AssertionError("nobody joined, so nobody is idle")


def test_a_member_reads_answers_and_ends_through_its_hub_alone() -> None:
    config = ServerConfig(name="hubtest", rate=0)
    hub = RecordingHub()

    def never_dropped(member: Recipient, reason: LeaveReason) -> None:
        raise AssertionError(f"dropped: {reason}")

    async def scenario() -> tuple[bytes, bytes, bytes]:
        fanout = Fanout(Room(config.room_limits()), never_dropped)
        flood = FloodControl(config.flood_limits())

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            codec = ServerCodec(config.effective_line_limit)
            member = Member(hub, config, codec, fanout, flood, reader, writer)
            await member.run()
            await member.finish_closing()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            banner = await asyncio.wait_for(reader.readline(), TIMEOUT)
            writer.write(b'{"type":"hello","name":"alice","version":1}\n')
            answer = await asyncio.wait_for(reader.readline(), TIMEOUT)
            writer.write_eof()  # the peer is done: the member tells its hub and closes
            rest = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            return banner, answer, rest

    banner, answer, rest = asyncio.run(scenario())
    assert banner == b"Welcome to tcpchat on hubtest! 7 members online. Enter your name:\n"
    assert json.loads(answer) == {"type": "pong", "id": "alice"}
    assert rest == b""
    assert [type(event) for event in hub.events] == [Hello]
    assert hub.left == [LeaveReason.DISCONNECTED]
