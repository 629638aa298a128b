"""The store's face to asyncio: messages numbered at once, written by one thread in groups.

A room calls `SqliteLog.append` (numbering is immediate and synchronous, as the `MessageLog`
seam needs) and then awaits `Store.commit()`; everything appended before that call is then
durable.  One background thread owns the writing connection: each batch it gets is one
transaction and one fsync, and while it writes, new messages gather into the next batch, so a
busy event-loop turn costs one commit however many messages it holds, and the loop itself
never waits on the disk.

Nothing may be sent (no `ack`, no `message`) before `commit()` returns.  When it raises
`StoreUnavailable`, every message numbered since the last durable one is void: each room's
`seq` goes back to its last durable message, so the next message takes that number again (it
was never sent to anyone) and live members still see `seq` without gaps.  The next commit
simply tries again, so the store recovers once the disk has room.

Reads of pages (`history`, `since`) run on the caller's thread on a second connection: they
are index look-ups that take a millisecond or two even with a million messages (see
tests/benchmarks/bench_store.py), and in WAL mode they never wait for the writer.  `search` is
awaited and runs on a reading thread of its own: with FTS5 it takes well under a millisecond,
but the fallback reads every message until it has enough (about a second a million).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from tcpchat.protocol import Message
from tcpchat.server.messages import LogUnavailable
from tcpchat.server.store import database
from tcpchat.server.store.database import Entry

# PROTOCOL.md's bounds: a resume gives at most this many messages, a `history` page and a
# search answer at most these.
MAX_RESUME = 1000
MAX_PAGE = 500
MAX_RESULTS = 200
# Rows deleted per retention transaction: small enough that a waiting batch of new messages
# is written a few milliseconds later, not after the whole clean-up.
PRUNE_CHUNK = 500


class StoreUnavailable(LogUnavailable):
    """The history file cannot be written (or opened) now; `str()` is one sentence for a person.

    `marks` are the rooms' high-water marks read back from the file after the failure, when it
    could still be read: a COMMIT that reported an error may yet have reached the disk, and
    then its numbers are taken, not given out again."""

    def __init__(self, sentence: str, marks: dict[str, int] | None = None) -> None:
        super().__init__(sentence)
        self.marks = marks or {}


def _unavailable(
    path: Path, error: BaseException, connection: sqlite3.Connection
) -> StoreUnavailable:
    try:
        marks = database.high_water(connection)
    except sqlite3.Error:
        marks = {}
    return StoreUnavailable(f"The message store {path} cannot be written: {error}.", marks)


class Store:
    """One history file: its writer thread, its reading connection, and a `SqliteLog` per room."""

    def __init__(
        self,
        path: Path | str,
        *,
        fts: bool | None = None,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        """Open (or create) the file at `path`.

        `fts` chooses the search: FTS5 where this SQLite has it (None), or the word-by-word
        fallback (False).  `factory` makes the writing connection (tests make one that fails).
        Raises `StoreUnavailable` if the file cannot be opened or is not a database.
        """
        self.path = Path(path)
        self.fts = database.fts5_available() if fts is None else fts
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _make_private(self.path)
            self._writer = database.connect(path, factory=factory)
            database.create_schema(self._writer, fts=self.fts)
            self._reader = database.connect(path)
            marks = database.high_water(self._reader)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(
                f"The message store {self.path} cannot be opened: {error}."
            ) from error
        self._marks = marks
        self._logs: dict[str, SqliteLog] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "tcpchat-store")
        self._searcher = concurrent.futures.ThreadPoolExecutor(1, "tcpchat-search")
        self._pending: list[Entry] = []
        self._waiting: asyncio.Future[None] | None = None  # the commit of `_pending`
        self._in_flight: asyncio.Future[None] | None = None  # the batch being written
        self.failures = 0  # failed batches, for the operator's log
        self._search_connection: sqlite3.Connection | None = None

    # --- rooms ---------------------------------------------------------------------------------

    def room(self, name: str, *, recent: int | None = None) -> SqliteLog:
        """The log of the room `name` (made on first use), keeping its newest `recent` messages
        in memory for each joiner's `welcome` (None: as many as before, none at first)."""
        log = self._logs.get(name)
        if log is None:
            log = SqliteLog(self, name, self._marks.get(name, 0))
            self._logs[name] = log
        if recent is not None:
            log._keep_recent(recent)
        return log

    def _enqueue(self, entry: Entry) -> None:
        self._pending.append(entry)

    # --- writing -------------------------------------------------------------------------------

    async def commit(self) -> None:
        """Return once every message appended so far is durable; raise `StoreUnavailable` (and
        void them) if it cannot be.  Calls in the same turn share one transaction."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            if self._in_flight is not None:
                await asyncio.shield(self._in_flight)
            return
        if self._waiting is None:
            self._waiting = loop.create_future()
            self._waiting.add_done_callback(_retrieve)
            # At the end of this turn, so that the rest of the turn's messages come along.
            loop.call_soon(self._flush)
        await asyncio.shield(self._waiting)

    def _flush(self) -> None:
        if self._in_flight is not None or self._waiting is None:
            return  # the batch in flight flushes again when it is done
        batch, self._pending = self._pending, []
        done, self._waiting = self._waiting, None
        self._in_flight = done
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)
        job.add_done_callback(functools.partial(self._written, batch, done))

    def _write(self, batch: list[Entry]) -> None:
        """On the writer thread: the whole batch in one transaction."""
        try:
            database.write(self._writer, batch)
        except (sqlite3.Error, OSError) as error:
            raise _unavailable(self.path, error, self._writer) from error

    def _written(
        self, batch: list[Entry], done: asyncio.Future[None], job: asyncio.Future[None]
    ) -> None:
        self._in_flight = None
        error = job.exception()
        if error is None:
            for entry in batch:
                self._logs[entry.room]._made_durable(entry.message)
            done.set_result(None)
        else:
            self.failures += 1
            # The messages numbered after the failed ones are void as well: their numbers
            # follow numbers that now belong to nobody.
            self._pending = []
            marks = error.marks if isinstance(error, StoreUnavailable) else {}
            for log in self._logs.values():
                log._rewind(marks.get(log.room, 0))
            done.set_exception(error)
            if self._waiting is not None:
                self._waiting.set_exception(StoreUnavailable(str(error)))
                self._waiting = None
        self._flush()

    async def prune(
        self,
        now: datetime,
        *,
        keep_days: float | None = None,
        keep_messages: int | None = None,
        chunk: int = PRUNE_CHUNK,
    ) -> int:
        """Delete messages older than `keep_days` or beyond each room's newest `keep_messages`
        (None or 0: no limit), a small transaction at a time, so new messages are never held up
        for long; return how many went.  Rooms' marks stay, so no `seq` comes back."""
        before_ts = now - timedelta(days=keep_days) if keep_days else None
        keep_messages = keep_messages or None
        if before_ts is None and keep_messages is None:
            return 0
        loop = asyncio.get_running_loop()
        rooms = set(self._marks) | set(self._logs)
        total = 0
        for room in sorted(rooms):
            while True:
                deleted = await loop.run_in_executor(
                    self._executor, self._prune_chunk, room, before_ts, keep_messages, chunk
                )
                total += deleted
                if deleted < chunk:
                    break
        for log in self._logs.values():
            log._forget(before_ts, keep_messages)
        return total

    def _prune_chunk(
        self, room: str, before_ts: datetime | None, keep: int | None, chunk: int
    ) -> int:
        try:
            return database.prune_chunk(
                self._writer, room, before_ts=before_ts, keep=keep, chunk=chunk
            )
        except (sqlite3.Error, OSError) as error:
            raise _unavailable(self.path, error, self._writer) from error

    # --- reading -------------------------------------------------------------------------------

    @property
    def reader(self) -> sqlite3.Connection:
        return self._reader

    # --- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is pending (if it can), then stop the writer thread and close the file."""
        try:
            await self.commit()
        finally:
            self.close()

    async def search(self, room: str, text: str, limit: int) -> list[Message]:
        """`database.search` on the searching thread, so a long scan never holds up the loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._searcher, self._search, room, text, limit
        )

    def _search(self, room: str, text: str, limit: int) -> list[Message]:
        # The reading connection is the loop thread's: the search thread has one of its own.
        if self._search_connection is None:
            self._search_connection = database.connect(self.path)
            database.add_fallback_search(self._search_connection)
        return database.search(self._search_connection, room, text, limit, fts=self.fts)

    def close(self) -> None:
        """Stop the threads (after the work they have) and close the connections."""
        self._executor.shutdown(wait=True)
        self._searcher.shutdown(wait=True)
        if self._search_connection is not None:
            self._search_connection.close()
        self._writer.close()
        self._reader.close()


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a batch's failure as seen: its awaiters may all have gone (cancelled) by then."""
    if not future.cancelled():
        future.exception()


class SqliteLog:
    """One room's messages in a `Store`: a `MessageLog` that also pages, resumes and searches."""

    def __init__(self, store: Store, room: str, mark: int) -> None:
        self._store = store
        self.room = room
        self.seq = mark  # the last `seq` given out, pending messages included
        self.durable_seq = mark  # the last `seq` known to be in the file
        self._recent: collections.deque[Message] | None = None

    def _keep_recent(self, count: int) -> None:
        if count == (0 if self._recent is None else self._recent.maxlen):
            return
        kept = database.newest(self._store.reader, self.room, count) if count else []
        self._recent = collections.deque(kept, maxlen=count) if count else None

    def append(self, sender: str, text: str, ts: datetime, *, me: bool = False) -> Message:
        """Number a message with the next `seq` and queue it for the next commit."""
        self.seq += 1
        message = Message(seq=self.seq, sender=sender, text=text, ts=ts, me=me)
        self._store._enqueue(Entry(self.room, message, me))
        return message

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
        rows = database.before(self._store.reader, self.room, start, limit + 1)
        more = len(rows) > limit
        return rows[1:] if more else rows, more

    def before(self, seq: int | None, limit: int) -> tuple[list[Message], bool]:
        """`history` under the name the room's `MessageLog` gives it."""
        return self.history(seq, limit)

    def since(self, seq: int, limit: int = MAX_RESUME) -> tuple[list[Message], bool]:
        """A resume after `seq`: the newest `limit` (at most 1,000) messages above it, oldest
        first, and the `gap` flag: true when some messages after `seq` are not among them (more
        than the limit, deleted by retention) or `seq` is beyond the newest (another history)."""
        newest = self.durable_seq
        if seq > newest:
            return [], True
        seq = max(seq, 0)
        limit = max(0, min(limit, MAX_RESUME))
        found = database.after(self._store.reader, self.room, seq, limit)
        return found, len(found) < newest - seq

    async def search(self, text: str, limit: int = 20) -> list[Message]:
        """`search`: up to `limit` (at most 200) messages holding every word of `text` as a whole
        word, case-insensitively, newest first."""
        limit = max(0, min(limit, MAX_RESULTS))
        return await self._store.search(self.room, text, limit)

    # --- the store's calls, on the event loop's thread -----------------------------------------

    def _made_durable(self, message: Message) -> None:
        self.durable_seq = message.seq
        if self._recent is not None:
            self._recent.append(message)

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


def _make_private(path: Path) -> None:
    """Create the history file readable by its owner only (what people said is theirs, not the
    machine's other users'); an existing one is left as its owner set it."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
