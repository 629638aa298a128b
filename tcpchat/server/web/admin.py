"""The operator's page's WebSocket (`/admin/ws`): a secret token, then the server's live state
and the console's commands.

The token is made at start (256 random bits) and printed in the welcome message as a link whose
fragment holds it, so it never travels in a request line or a log; the page sends it as its
first frame and it is compared in constant time.  A wrong one counts as a wrong password for
the address (the same lockout applies) and ends the connection.  Then the page gets the state
(members with their addresses and how they came, counts, bans, recent refusals) whenever it
changes, and may ask what a command would do (`preview`) before it runs it (`run`): the same
commands, with the same answers, as the console's.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from tcpchat.defaults import READ_CHUNK, SECONDS
from tcpchat.protocol import Mode
from tcpchat.protocol.jsonlines import format_ts
from tcpchat.server import moderation

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

STATE_EVERY = 0.5 * SECONDS  # how often the page's state is checked for changes
WRONG_TOKEN = "That link is not the operator's: open the one the server printed when it started."
VIA = {Mode.JSON: "tcp", Mode.PLAIN: "plain", Mode.WEB: "web", Mode.UNDECIDED: "tcp"}

log = logging.getLogger("tcpchat.server")


def new_token() -> str:
    return secrets.token_urlsafe(32)


class OperatorPage:
    """Serves the operator's page's WebSocket connections for one server."""

    def __init__(self, server: ChatServer, token: str) -> None:
        self.server = server
        self.token = token

    def is_token(self, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), self.token.encode()
        )

    async def serve(
        self,
        protocol: ServerProtocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
    ) -> None:
        """One page, from its first frame (the token) until it goes."""
        link = _Link(protocol, reader, writer)
        first = await link.next_object(self.server.config.handshake_timeout)
        if first is None:
            return
        locked = self.server.guard.password_refused(host)
        if (
            locked is not None
            or first.get("type") != "auth"
            or not self.is_token(first.get("token"))
        ):
            if locked is None:
                self.server.guard.password_failed(host)
            link.send({"type": "error", "message": locked or WRONG_TOKEN})
            link.close()
            log.info("refused the operator's page to %s: wrong token", host)
            return
        log.info("the operator's page was opened from %s", host)
        shown: dict[str, Any] | None = None
        while link.open:
            state = self.state()
            if _steady(state) != shown:  # clocks alone: the page counts them on itself
                link.send(state)
                shown = _steady(state)
            request = await link.next_object(STATE_EVERY)
            if request is not None:
                link.send(self.answer(request))

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to a `preview` or `run` of a console command."""
        kind, command = request.get("type"), request.get("command")
        if kind not in ("preview", "run") or not isinstance(command, str):
            return {"type": "error", "message": "Ask for a preview or a run of a command."}
        if kind == "preview":
            text = moderation.preview(self.server, command)
        else:
            text = moderation.execute(self.server, command)
            log.info("operator's page: %s -> %s", command, text)
        reply = "preview" if kind == "preview" else "result"
        return {"type": reply, "id": request.get("id"), "text": text}

    def state(self) -> dict[str, Any]:
        """What the page shows, as it is now."""
        server = self.server
        now = asyncio.get_running_loop().time()
        members = []
        for room in server.rooms.values():
            for name in room.sorted_names():
                member = server.member(name)
                if member is None:
                    continue
                members.append(
                    {
                        "name": name,
                        "address": member.peer,
                        "via": VIA[member.codec.mode],
                        "tls": server.config.tls is not None,
                        "idle_seconds": int(now - member.last_active),
                    }
                )
        bans = [
            {"address": key, "seconds_left": None if left is None else int(left)}
            for key, left in sorted(server.guard.bans().items())
        ]
        refusals = [
            {"ts": format_ts(when), "address": peer, "reason": why}
            for when, peer, why in reversed(server.door.refusals.recent)
        ]
        return {
            "type": "state",
            "server": server.config.name,
            "members": members,
            "count": server.online,
            "connections": len(server.connections),
            "bans": bans,
            "refusals": refusals,
            "seq": server.lobby.seq,
        }


def _steady(state: dict[str, Any]) -> dict[str, Any]:
    """`state` without the times that change every second (idle, a ban's time left)."""
    members = [{k: v for k, v in m.items() if k != "idle_seconds"} for m in state["members"]]
    bans = [{k: v for k, v in b.items() if k != "seconds_left"} for b in state["bans"]]
    return {**state, "members": members, "bans": bans}


class _Link:
    """A WebSocket over asyncio streams, one JSON object a text frame (the page is small and
    trusted once it has shown the token: it is served simply, with a deadline on every read)."""

    def __init__(
        self, protocol: ServerProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self._objects: list[dict[str, Any]] = []
        self._ended = False

    @property
    def open(self) -> bool:
        return (
            not self._ended and self.protocol.state is State.OPEN and not self.writer.is_closing()
        )

    async def next_object(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON object the page sent, or None if none came within `timeout` (or the
        page went: `open` is then false)."""
        if self._objects:
            return self._objects.pop(0)
        try:
            data = await asyncio.wait_for(self.reader.read(READ_CHUNK), timeout)
        except asyncio.TimeoutError:
            return None
        except OSError:
            data = b""
        if not data:
            self._ended = True
            self.protocol.receive_eof()
            return None
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                try:
                    value = json.loads(bytes(event.data))
                except ValueError:
                    continue
                if isinstance(value, dict):
                    self._objects.append(value)
        self._flush()
        return self._objects.pop(0) if self._objects else None

    def send(self, value: dict[str, Any]) -> None:
        if self.open:
            self.protocol.send_text(json.dumps(value, ensure_ascii=False).encode())
            self._flush()

    def close(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(CloseCode.POLICY_VIOLATION)
        self._flush()

    def _flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data and not self.writer.is_closing():
            self.writer.write(data)
