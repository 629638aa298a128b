"""One room as Redis keeps it for every process: say, join, leave, free a dead process's names,
read the ordered events from a point on, and read messages by `seq`.

This module only talks to Redis (the `redis` package's asyncio client; RESP is its job) and
turns its answers into the protocol's events; which member gets what stays the server's.  Any
Redis failure is `ClusterUnavailable`, one sentence, so that the room can answer `unavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from tcpchat.protocol import (
    Joined,
    LeaveReason,
    Left,
    Message,
    Private,
    Renamed,
    confusable_keys,
    fold_name,
)
from tcpchat.protocol.jsonlines import format_ts, parse_ts
from tcpchat.server.cluster import scripts
from tcpchat.server.cluster.keys import TOKEN_KEY, RoomKeys
from tcpchat.server.messages import LogUnavailable
from tcpchat.server.store.words import has_words, query_words

# Entries kept in a room's streams: live events only need to last for a catch-up, messages as
# long as the history is kept (trimmed approximately, as Redis does it cheaply).
EVENTS_KEPT = 100_000
HISTORY_KEPT = 1_000_000
# A search reads at most this many of the newest messages, this many at a time.
SEARCH_SCAN = 20_000
SEARCH_CHUNK = 1_000
IDS_KEPT = 600  # seconds a lineage's ids are remembered (`once.WINDOW`)
READ_BLOCK_MS = 1000  # how long one read of a stream waits for news
RETRY_AFTER = 0.5  # seconds before trying Redis again after a failure


class ClusterUnavailable(LogUnavailable):
    """Redis cannot be reached or refused the change; `str()` is one sentence for a person."""


async def ask(what: str, call: Any) -> Any:
    """Await a Redis call; its failure as `ClusterUnavailable` ("Redis could not `what`: ...")."""
    try:
        return await call
    except (RedisError, OSError) as error:
        reason = str(error).rstrip(".") or type(error).__name__
        raise ClusterUnavailable(f"Redis could not {what}: {reason}.") from error


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a room's `events` stream: its stream id, the protocol's event, and which
    process (and which of its requests, for an ack) it came from."""

    id: str
    event: Message | Joined | Left | Renamed | Private
    origin: str
    tag: str = ""
    delivered: int = 0  # a message's: to how many others it went
    # `PROCESS CONNECTION NAME` of the member a `left` or `private` is about (or for)
    holder: str = ""


@dataclass(frozen=True, slots=True)
class Said:
    """A message on its way to Redis: who, what, when, and which request of whose it answers
    (`tag`: the connection and id; `lineage` and `request`: the id's owner and digest)."""

    sender: str
    text: str
    ts: datetime
    me: bool = False
    tag: str = ""
    lineage: int = 0
    request: bytes = b""  # `once.request_key` of the id; empty without one


@dataclass(frozen=True, slots=True)
class Kept:
    """What Redis did with a message: its `seq`, or (`again`) the ack of the same id sent
    earlier: its `seq`, time and count, and nothing was added."""

    seq: int
    again: tuple[datetime, int] | None = None


def _kept(answer: list[Any]) -> Kept:
    if int(answer[0]) == 0:
        seq, ts, delivered = str(answer[1]).split(" ")
        return Kept(int(seq), (parse_ts(ts), int(delivered)))
    return Kept(int(answer[0]))


@dataclass(frozen=True, slots=True)
class Claim:
    """A join's answer: the name is now ours (with the room's count), or someone holds it or a
    name it looks like."""

    claimed: bool
    members: int = 0
    holder: str = ""  # who holds it (not claimed), or held it before the token took it (claimed)
    event_id: str = ""  # where the join is in the room's events
    seq: int = 0  # the newest message before it
    looks_like: str = ""  # the name someone holds that this one looks like


def _claim(answer: list[Any]) -> Claim:
    kind = int(answer[0])
    if kind == 0:
        return Claim(False, holder=str(answer[1]))
    if kind == 3:
        return Claim(False, looks_like=str(answer[1]))
    holder = str(answer[4]) if kind == 2 else ""
    return Claim(True, int(answer[1]), holder, str(answer[2]), int(answer[3]))


def holder_parts(holder: str) -> tuple[str, str, str]:
    """`PROCESS CONNECTION NAME` as its three parts."""
    process, connection, name = holder.split(" ", 2)
    return process, connection, name


def _looks(name: str) -> str:
    return json.dumps(sorted(confusable_keys(name)), ensure_ascii=False)


class SharedRoom:
    """One room in Redis, as one process (`process`) sees and changes it."""

    def __init__(
        self, client: redis.Redis, room: str, process: str, reader: redis.Redis | None = None
    ) -> None:
        """`reader` (default: `client`) waits for the room's events: a blocking read cancelled
        at shutdown must not leave its connection to the commands that follow."""
        self.client = client
        self.reader = client if reader is None else reader
        self.keys = RoomKeys(room)
        self.process = process
        self._say = client.register_script(scripts.SAY)
        self._join = client.register_script(scripts.JOIN)
        self._leave = client.register_script(scripts.LEAVE)
        self._forget = client.register_script(scripts.FORGET_PROCESS)
        self._raise_seq = client.register_script(scripts.RAISE_SEQ)
        self._rename = client.register_script(scripts.RENAME)
        self._dm = client.register_script(scripts.DM)

    def _name_keys(self, process: str) -> list[str]:
        keys = self.keys
        return [keys.names, keys.events, keys.owned_by(process), keys.looks, keys.claims]

    # --- changes -------------------------------------------------------------------------------

    async def say(
        self, sender: str, text: str, ts: datetime, *, me: bool = False, tag: str = ""
    ) -> int:
        """Give a message its `seq` and its place in the room's order; return the `seq`."""
        (kept,) = await self.say_many([Said(sender, text, ts, me, tag)])
        return kept.seq

    async def say_many(self, messages: Sequence[Said]) -> list[Kept]:
        """Each of `messages` in the order given, in one round trip (Redis runs one
        connection's commands in order, so a member's messages keep theirs): its `seq`, or
        the first one's when its lineage sent its id before, on any process."""
        keys = self.keys
        async with self.client.pipeline(transaction=False) as pipe:  # given back, also on error
            for said in messages:
                await self._say(  # on a pipeline, this only queues the call
                    keys=[keys.seq, keys.events, keys.history, keys.names, keys.ids(said.lineage)],
                    args=[said.sender, said.text, format_ts(said.ts), int(said.me), self.process,
                          said.tag, HISTORY_KEPT, EVENTS_KEPT, said.request.hex(), IDS_KEPT],
                    client=pipe,
                )  # fmt: skip
            answers = await ask("keep the messages", pipe.execute())
        return [_kept(answer) for answer in answers]

    async def join(
        self,
        name: str,
        connection: str,
        ts: datetime,
        *,
        token: str = "",
        shown: str = "",
    ) -> Claim:
        """Claim `name` for one of our connections (whose token's digest is `token`), unless
        someone holds it or a name it looks like; or take it over from its holder when `shown`
        is the digest of the holder's token."""
        answer = await ask(
            "claim the name",
            self._join(
                keys=[*self._name_keys(self.process), self.keys.seq],
                args=[fold_name(name), name, f"{self.process} {connection}", format_ts(ts),
                      EVENTS_KEPT, self.process, connection, _looks(name), token, shown],
            ),
        )  # fmt: skip
        return _claim(answer)

    async def rename(self, old: str, new: str, connection: str, ts: datetime) -> Claim:
        """Move our connection's name `old` to `new` with a `renamed` (`event_id`), unless
        someone holds `new` or a name it looks like.  Not claimed and no holder: `old` is no
        longer ours (its process was taken for dead)."""
        answer = await ask(
            "change the name",
            self._rename(
                keys=self._name_keys(self.process),
                args=[fold_name(old), fold_name(new), new, f"{self.process} {connection}",
                      format_ts(ts), EVENTS_KEPT, self.process, connection, _looks(new)],
            ),
        )  # fmt: skip
        kind = int(answer[0])
        if kind == 1:
            return Claim(True, event_id=str(answer[1]))
        if kind == 3:
            return Claim(False, looks_like=str(answer[1]))
        return Claim(False, holder=str(answer[1]) if kind == 0 else "")

    async def dm(self, to: str, sender: str, text: str, ts: datetime) -> str | None:
        """Pass a private message to whichever process holds `to`: its display name, or None
        when nobody does."""
        keys = self.keys
        answer = await ask(
            "pass the private message on",
            self._dm(
                keys=[keys.names, keys.events],
                args=[fold_name(to), sender, text, format_ts(ts), EVENTS_KEPT, self.process],
            ),
        )
        return str(answer[1]) if int(answer[0]) == 1 else None

    async def delivered(self, event_id: str) -> None:
        """A private message reached its recipient: it is not kept any longer."""
        await ask("forget a private message", self.client.xdel(self.keys.events, event_id))

    async def leave(
        self, name: str, connection: str, reason: LeaveReason, ts: datetime
    ) -> int | None:
        """Free our connection's name with a `left`; the count after it, or None if the name
        was not ours (freed already, or taken over with its token)."""
        answer = await ask(
            "free the name",
            self._leave(
                keys=self._name_keys(self.process),
                args=[fold_name(name), f"{self.process} {connection}", reason.value,
                      format_ts(ts), EVENTS_KEPT, self.process],
            ),
        )  # fmt: skip
        return int(answer[1]) if int(answer[0]) == 1 else None

    async def forget_process(self, process: str, ts: datetime) -> int:
        """Free every name a dead process's members held here, each with its `left`."""
        gone = await ask(
            "free a stopped process's names",
            self._forget(
                keys=self._name_keys(process),
                args=[process, format_ts(ts), EVENTS_KEPT, self.process],
            ),
        )
        return int(gone)

    async def token_key(self, candidate: bytes) -> bytes:
        """The cluster's key for signing tokens: the first process's `candidate`, kept."""
        client = self.client
        await ask("share the token key", client.set(TOKEN_KEY, candidate.hex(), nx=True))
        value = await ask("share the token key", client.get(TOKEN_KEY))
        return bytes.fromhex(value)

    async def raise_seq(self, seen: int = 0) -> int:
        """Make sure the counter is not below the newest message kept nor `seen` (the newest
        this process delivered); return it."""
        keys = self.keys
        return int(
            await ask(
                "check the room's counter",
                self._raise_seq(keys=[keys.seq, keys.history], args=[seen]),
            )
        )

    # --- reading -------------------------------------------------------------------------------

    async def events_after(
        self, last_id: str, *, block_ms: int | None = None, count: int = 1000
    ) -> list[Event]:
        """The room's events after the stream id `last_id` (`0`: from the oldest kept), waiting
        up to `block_ms` for one when there are none yet."""
        found = await ask(
            "read the room's events",
            self.reader.xread({self.keys.events: last_id}, count=count, block=block_ms),
        )
        if not found:
            return []
        entries: Sequence[tuple[str, dict[str, str]]] = found[0][1]
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def newest_event_id(self) -> str:
        """Where live delivery starts for a process that has just started: after the newest."""
        found = await ask(
            "read the room's events", self.client.xrevrange(self.keys.events, count=1)
        )
        return found[0][0] if found else "0-0"

    async def since(self, seq: int, limit: int) -> list[Message]:
        """Up to `limit` messages after `seq`: the newest of them, oldest first."""
        found = await ask(
            "read the history",
            self.client.xrevrange(self.keys.history, "+", f"0-{seq + 1}", count=limit),
        )
        return [_message(entry_id, fields) for entry_id, fields in reversed(found)]

    async def before(self, seq: int | None, limit: int) -> list[Message]:
        """Up to `limit` messages below `seq` (None: the newest), oldest first."""
        top = "+" if seq is None else f"0-{max(seq - 1, 0)}"
        if top == "0-0":
            return []
        found = await ask(
            "read the history",
            self.client.xrevrange(self.keys.history, top, "-", count=limit),
        )
        return [_message(entry_id, fields) for entry_id, fields in reversed(found)]

    async def search(self, text: str, limit: int) -> list[Message]:
        """The newest `limit` messages holding every word of `text`, newest first, among the
        newest SEARCH_SCAN (in cluster mode a search reads the history; no index is kept)."""
        wanted = query_words(text)
        if not wanted or limit <= 0:
            return []
        joined, found, top = " ".join(wanted), [], "+"
        for _ in range(SEARCH_SCAN // SEARCH_CHUNK):
            chunk = await ask(
                "search the history",
                self.client.xrevrange(self.keys.history, top, "-", count=SEARCH_CHUNK),
            )
            for entry_id, fields in chunk:
                if has_words(fields["text"], joined):
                    found.append(_message(entry_id, fields))
                    if len(found) >= limit:
                        return found
            if len(chunk) < SEARCH_CHUNK:
                break
            top = "(" + chunk[-1][0]
        return found

    async def newest_seq(self) -> int:
        value = await ask("read the room's counter", self.client.get(self.keys.seq))
        return int(value or 0)

    async def holder_of(self, name: str) -> str | None:
        """The process whose member holds `name`, or None."""
        holder = await ask("find a name", self.client.hget(self.keys.names, fold_name(name)))
        return None if not holder else str(holder).split(" ", 1)[0]

    async def names(self) -> list[str]:
        """Every member's name, in the whole cluster."""
        values = await ask("read the names", self.client.hvals(self.keys.names))
        return sorted(value.split(" ", 2)[2] for value in values)


def _message(entry_id: str, fields: dict[str, str]) -> Message:
    return Message(
        seq=int(entry_id.split("-", 1)[1]),
        sender=fields["from"],
        text=fields["text"],
        ts=parse_ts(fields["ts"]),
        me=fields.get("me") == "1",
    )


def _event(entry_id: str, fields: dict[str, str]) -> Event:
    kind, origin = fields["type"], fields.get("origin", "")
    ts = parse_ts(fields["ts"])
    if kind == "message":
        message = Message(
            seq=int(fields["seq"]),
            sender=fields["from"],
            text=fields["text"],
            ts=ts,
            me=fields.get("me") == "1",
        )
        return Event(
            entry_id, message, origin, fields.get("tag", ""), int(fields.get("delivered", 0))
        )
    if kind == "joined":
        joined = Joined(name=fields["name"], members=int(fields["members"]), ts=ts)
        return Event(entry_id, joined, origin, fields.get("tag", ""))
    if kind == "renamed":
        renamed = Renamed(old=fields["old"], new=fields["new"], ts=ts)
        return Event(entry_id, renamed, origin, fields.get("tag", ""))
    if kind == "private":
        private = Private(sender=fields["from"], to=fields["to"], text=fields["text"], ts=ts)
        return Event(entry_id, private, origin, holder=fields["holder"])
    reason = LeaveReason(fields["reason"])
    left = Left(name=fields["name"], members=int(fields["members"]), reason=reason, ts=ts)
    return Event(entry_id, left, origin, holder=fields.get("holder", ""))
