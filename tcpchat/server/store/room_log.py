"""One room's messages in a `Store`: the `MessageLog` a room numbers, pages, resumes and
searches through.

Numbering is immediate (the seam needs it); a message is durable once the store's commit
returns.  Pages (`history`, `since`) are read on the caller's thread from the store's reading
connection: range scans of a millisecond or two even with a million messages; `search` is
awaited on the store's searching thread.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from tcpchat.protocol import Message
from tcpchat.server.messages import SentBy
from tcpchat.server.store import database
from tcpchat.server.store.database import Entry
from tcpchat.server.store.errors import StoreUnavailable

if TYPE_CHECKING:
    from tcpchat.server.store.log import Store

# PROTOCOL.md's bounds: a resume gives at most this many messages, a `history` page and a
# search answer at most these.
MAX_RESUME = 1000
MAX_PAGE = 500
MAX_RESULTS = 200


class SqliteLog:
    """One room's messages in a `Store`: a `MessageLog` that also pages, resumes and searches."""

    def __init__(self, store: Store, room: str, number: int, mark: int) -> None:
        self._store = store
        self.room = room
        self.number = number  # the room's number in the file
        self.seq = mark  # the last `seq` given out, pending messages included
        self.durable_seq = mark  # the last `seq` known to be in the file
        self._recent: collections.deque[Message] | None = None

    def _keep_recent(self, count: int) -> None:
        if count == (0 if self._recent is None else self._recent.maxlen):
            return
        kept = self._read(database.newest, count) if count else []
        self._recent = collections.deque(kept, maxlen=count) if count else None

    @property
    def token_key(self) -> bytes:
        """The file's key for the rooms' tokens: they outlive a restart, as the ids do."""
        return self._store.token_key

    def append(
        self,
        sender: str,
        text: str,
        ts: datetime,
        *,
        me: bool = False,
        sent_by: SentBy | None = None,
    ) -> Message:
        """Number a message with the next `seq` and queue it for the next commit."""
        self.seq += 1
        message = Message(seq=self.seq, sender=sender, text=text, ts=ts, me=me)
        self._store._enqueue(Entry(self.number, message, sent_by))
        return message

    def sent_lately(self) -> list[tuple[SentBy, Message]]:
        """The messages sent with an id among the room's newest hundred thousand, oldest first
        (a read of a few milliseconds at a start)."""
        try:
            return database.sent_lately(self._store.reader, self.number)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(
                f"The message store {self._store.path} cannot be read: {error}."
            ) from error

    async def commit(self) -> None:
        """`Store.commit`: every message appended so far (in any room) is durable."""
        await self._store.commit()

    def recent(self) -> list[Message]:
        """The newest durable messages kept for a `welcome`, oldest first."""
        return [] if self._recent is None else list(self._recent)

    def history(self, before: int | None = None, limit: int = 50) -> tuple[list[Message], bool]:
        """A `history` page: up to `limit` (at most 500) messages below `before` (default: the
        newest and older), oldest first, and whether older ones exist."""
        limit = max(0, min(limit, MAX_PAGE))
        start = self.durable_seq + 1 if before is None else before
        rows = self._read(database.before, start, limit + 1)
        more = len(rows) > limit
        return rows[1:] if more else rows, more

    def before(self, seq: int | None, limit: int) -> tuple[list[Message], bool]:
        """`history` under the name the room's `MessageLog` gives it."""
        return self.history(seq, limit)

    def since(self, seq: int, limit: int = MAX_RESUME) -> tuple[list[Message], bool]:
        """A resume after `seq`: the newest `limit` (at most 1,000) messages above it, oldest
        first, and whether they are all of them (`MessageLog.since`): false when some after
        `seq` are not among them (more than the limit, deleted by retention) or `seq` is beyond
        the newest (another history), which the `welcome` then calls a `gap`."""
        newest = self.durable_seq
        if seq > newest:
            return [], False
        seq = max(seq, 0)
        limit = max(0, min(limit, MAX_RESUME))
        found = self._read(database.after, seq, limit)
        return found, len(found) >= newest - seq

    async def search(self, text: str, limit: int = 20) -> list[Message]:
        """`search`: up to `limit` (at most 200) messages holding every word of `text` as a whole
        word, case-insensitively, newest first."""
        limit = max(0, min(limit, MAX_RESULTS))
        return await self._store.search(self.number, text, limit)

    def _read(self, query: Callable[..., list[Message]], *args: int) -> list[Message]:
        """Run one of `database`'s page reads for this room; a file that cannot be read now
        is `StoreUnavailable` (one sentence), not SQLite's own error."""
        try:
            return query(self._store.reader, self.number, *args)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(
                f"The message store {self._store.path} cannot be read: {error}."
            ) from error

    # --- the store's calls, on the event loop's thread -----------------------------------------

    def _made_durable(self, messages: list[Message]) -> None:
        """`messages` (in order) are in the file now."""
        self.durable_seq = messages[-1].seq
        if self._recent is not None:
            self._recent.extend(messages)

    def _rewind(self, mark: int) -> None:
        self.durable_seq = max(self.durable_seq, mark)
        self.seq = self.durable_seq

    def _forget(self, before_ts: datetime | None, keep: int | None) -> None:
        """Drop from the recent messages those that retention deleted from the file."""
        if self._recent is None:
            return
        while self._recent and (
            (before_ts is not None and self._recent[0].ts < before_ts)
            or (keep is not None and self._recent[0].seq <= self.durable_seq - keep)
        ):
            self._recent.popleft()
