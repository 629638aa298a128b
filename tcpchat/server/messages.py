"""Where a room's messages are numbered and kept: the `MessageLog` seam, and `MemoryLog`.

A room asks its log for the next `seq`, the recent messages for a joiner, a resume, a page of
history and a search; it never keeps messages itself.  `MemoryLog` keeps the last ones in this
process; `tcpchat.server.store`'s `SqliteLog` keeps them in a file, behind the same interface.
"""

from __future__ import annotations

import collections
import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tcpchat.protocol import Message
from tcpchat.protocol.quick import quick_init


class LogUnavailable(Exception):
    """The log cannot take or give messages right now (its store is down): nothing was done."""


@quick_init
@dataclass(frozen=True, slots=True)
class SentBy:
    """Who sent a message with an id (see `tcpchat.server.once`), kept with the message so
    that a resend of the id is answered with its ack, also by a restarted server."""

    lineage: int
    request: bytes  # `once.request_key` of the id
    delivered: int  # the ack's `delivered`


class MessageLog(Protocol):
    """Where a room's messages are numbered and kept: the one place that gives out `seq`.

    Any method may raise `LogUnavailable`; the room then answers `unavailable`.
    """

    @property
    def seq(self) -> int:
        """The `seq` of the last message numbered (0 before the first)."""

    @property
    def durable_seq(self) -> int:
        """The `seq` of the last message kept for good (`seq` in memory; see `server.durable`)."""

    @property
    def token_key(self) -> bytes:
        """The key that signs the room's tokens: kept where the messages are, so that a token
        outlives a restart exactly when the ids sent under it do."""

    def append(
        self,
        sender: str,
        text: str,
        ts: datetime,
        *,
        me: bool = False,
        sent_by: SentBy | None = None,
    ) -> Message:
        """Number a message with the next `seq`, keep it, and return it."""

    def sent_lately(self) -> list[tuple[SentBy, Message]]:
        """The newest messages sent with an id, oldest first, kept by an earlier run (none in
        memory): what the room remembers of ids when it starts."""

    def recent(self) -> list[Message]:
        """The newest messages kept for a joiner's `welcome`, oldest first."""

    def since(self, seq: int, limit: int) -> tuple[list[Message], bool]:
        """The newest `limit` messages after `seq`, oldest first, and whether that is all of
        them (False when more were sent, or some are no longer kept: a gap)."""

    def before(self, seq: int | None, limit: int) -> tuple[list[Message], bool]:
        """The newest `limit` messages before `seq` (None: all), oldest first, and whether
        older ones are kept."""

    async def search(self, text: str, limit: int) -> list[Message]:
        """The newest `limit` messages holding every word of `text` (case-folded) as a whole
        word, newest first.  Awaited: a store may search on a thread of its own."""


# A resuming client gets at most this many of the messages it missed (PROTOCOL.md, Resuming).
RESUME_LIMIT = 1000
# At least this many messages are kept for resuming, paging and searching, unless none are.
MEMORY_KEPT = RESUME_LIMIT
_WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    """The words a search looks for, or that a message holds: runs of letters and digits,
    case-folded."""
    return _WORD.findall(text.casefold())


class MemoryLog:
    """A `MessageLog` in memory: the counter, and the last messages (none when `keep` is 0).

    A joiner's welcome shows the last `keep`; at least `MEMORY_KEPT` are kept for resuming,
    paging and searching.
    """

    __slots__ = ("_keep", "_kept", "_words", "seq", "token_key")

    def __init__(self, keep: int) -> None:
        self.seq = 0
        self.token_key = secrets.token_bytes(32)  # tokens last as long as this process
        self._keep = keep
        self._kept: collections.deque[Message] | None = (
            collections.deque(maxlen=max(keep, MEMORY_KEPT)) if keep else None
        )
        # The words of each kept message, by `seq`: worked out by the first search that reads
        # the message, not for every message sent, and then a set look-up for every later one.
        self._words: dict[int, frozenset[str]] = {}

    @property
    def durable_seq(self) -> int:
        return self.seq

    def append(
        self,
        sender: str,
        text: str,
        ts: datetime,
        *,
        me: bool = False,
        sent_by: SentBy | None = None,
    ) -> Message:
        self.seq += 1
        message = Message(seq=self.seq, sender=sender, text=text, ts=ts, me=me)
        if self._kept is not None:
            self._kept.append(message)
        return message

    def sent_lately(self) -> list[tuple[SentBy, Message]]:
        return []

    def recent(self) -> list[Message]:
        if self._kept is None:
            return []
        start = max(0, len(self._kept) - self._keep)
        return list(itertools.islice(self._kept, start, None))

    def _index(self, seq: int) -> int:
        """Where the message numbered `seq` is (or would be) in `_kept`, clamped to it."""
        kept = self._kept
        if not kept:
            return 0
        return min(max(0, seq - kept[0].seq), len(kept))

    def since(self, seq: int, limit: int) -> tuple[list[Message], bool]:
        if seq >= self.seq:
            return [], seq == self.seq
        kept = self._kept or ()
        start = self._index(seq + 1)
        missing = not kept or kept[0].seq > seq + 1
        count = len(kept) - start
        if count > limit:
            start, missing = len(kept) - limit, True
        return list(itertools.islice(kept, start, None)), not missing

    def before(self, seq: int | None, limit: int) -> tuple[list[Message], bool]:
        kept = self._kept
        if not kept:
            return [], False
        end = len(kept) if seq is None else self._index(seq)
        start = max(0, end - limit)
        return list(itertools.islice(kept, start, end)), start > 0

    async def search(self, text: str, limit: int) -> list[Message]:
        wanted = set(words_of(text))
        found: list[Message] = []
        if not wanted or not self._kept:
            return found
        known = self._words
        oldest = self._kept[0].seq
        if len(known) > len(self._kept):  # forget the words of messages no longer kept
            for seq in [seq for seq in known if seq < oldest]:
                del known[seq]
        for message in reversed(self._kept):
            held = known.get(message.seq)
            if held is None:
                held = known[message.seq] = frozenset(words_of(message.text))
            if wanted <= held:
                found.append(message)
                if len(found) >= limit:
                    break
        return found
