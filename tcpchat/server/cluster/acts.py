"""The operator's acts that every process of a cluster carries out: a ban (or its lifting)
made on one process holds on all of them, and a `/kick` of a member of another process is done
there.

The acts travel in one stream for the whole cluster (`CONTROL`).  Each process reads it from
where it joined; the entries it wrote itself it has carried out already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis

from tcpchat.server.cluster.keys import CONTROL
from tcpchat.server.cluster.shared_room import (
    READ_BLOCK_MS,
    RETRY_AFTER,
    ClusterUnavailable,
    SharedRoom,
    ask,
)

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

log = logging.getLogger("tcpchat.server")

KEPT = 10_000  # acts kept in the stream (a process only reads the ones after it joined)


class SharedActs:
    """The cluster's operator acts as this process (`process`) sends and obeys them."""

    def __init__(
        self,
        server: ChatServer,
        shared: SharedRoom,
        reader: redis.Redis,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        """`reader` waits for the acts on a connection of its own; `spawn` runs a task that
        the process's side cancels when it stops."""
        self.server = server
        self.shared = shared
        self.client = shared.client
        self.reader = reader
        self.process = shared.process
        self._spawn = spawn
        self._control_id = "0-0"

    async def start(self) -> None:
        """Obey the acts from now on (the earlier ones were done before this process came)."""
        found: Any = await ask("read the operator's acts", self.client.xrevrange(CONTROL, count=1))
        self._control_id = found[0][0] if found else "0-0"
        self._spawn(self._obey_forever())

    def share_ban(self, key: str, seconds: float | None) -> None:
        """Every other process bans `key` too (and removes its connections from there)."""
        fields = {"type": "ban", "key": key, "seconds": "" if seconds is None else str(seconds)}
        self._spawn(self._tell_all(fields))

    def share_unban(self, key: str) -> None:
        self._spawn(self._tell_all({"type": "unban", "key": key}))

    def kick_elsewhere(self, name: str, reason: str | None) -> None:
        """Ask the process that holds `name` to remove its member (the console's `/kick`)."""
        self._spawn(self._kick_elsewhere(name, reason))

    async def _kick_elsewhere(self, name: str, reason: str | None) -> None:
        try:
            process = await self.shared.holder_of(name)
        except ClusterUnavailable as error:
            log.warning("The kick of %s could not be passed on: %s", name, error)
            return
        if process is not None:
            fields = {"type": "kick", "process": process, "name": name, "reason": reason or ""}
            await self._tell_all(fields)

    async def _tell_all(self, fields: dict[str, str]) -> None:
        entry: Any = {**fields, "origin": self.process}
        try:
            await ask("tell the other processes", self.client.xadd(CONTROL, entry, maxlen=KEPT))
        except ClusterUnavailable as error:
            log.warning("%s", error)

    async def _obey_forever(self) -> None:
        while True:
            try:
                found: Any = await ask(
                    "read the operator's acts",
                    self.reader.xread({CONTROL: self._control_id}, block=READ_BLOCK_MS),
                )
            except ClusterUnavailable:
                await asyncio.sleep(RETRY_AFTER)
                continue
            for entry_id, fields in found[0][1] if found else []:
                self._control_id = entry_id
                if fields.get("origin") != self.process:
                    self._obey(fields)

    def _obey(self, fields: dict[str, str]) -> None:
        """One act the operator did on another process."""
        server = self.server
        kind = fields.get("type")
        if kind == "ban":
            seconds = float(fields["seconds"]) if fields.get("seconds") else None
            removed = server.ban(fields["key"], seconds, share=False)
            log.info(
                "banned %s (from another process); removed %s", fields["key"], removed or "nobody"
            )
        elif kind == "unban":
            server.guard.unban(fields["key"])
        elif kind == "kick" and fields.get("process") == self.process:
            member = server.member(fields["name"])
            if member is not None:
                server.kick(member, fields.get("reason") or None)
