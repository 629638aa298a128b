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

Under a steady stream the writer waits until `PACE` has passed since its last commit began
before it starts the next one, the way databases delay a group commit: a commit's fsync costs
the same for one message as for fifty, so this bounds the fsyncs to a few hundred a second
(and the CPU they cost) at the price of at most `PACE` of latency while it is busy.  A message
that comes when the writer has been idle for `PACE` is written at once.

The search index is brought up to date by the same thread in chunks (`database.index_some`)
once `INDEX_CHUNK` messages wait for it, or `INDEX_DELAY` after the first of them came.

Reads of pages (`history`, `since`) run on the caller's thread on a second connection: they
are range scans that take a millisecond or two even with a million messages (see
tests/benchmarks/bench_store.py), and in WAL mode they never wait for the writer.  `search` is
awaited and runs on a reading thread of its own: with FTS5 it takes well under a millisecond,
but without it every message is read until there are enough (about a second a million).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from tcpchat.protocol import Message
from tcpchat.server.store import database
from tcpchat.server.store.database import INDEX_CHUNK, Entry, RoomRow
from tcpchat.server.store.errors import StoreUnavailable, unavailable
from tcpchat.server.store.room_log import SqliteLog

log = logging.getLogger("tcpchat.server")

# Rows deleted per retention transaction: small enough that a waiting batch of new messages
# is written a few milliseconds later, not after the whole clean-up.
PRUNE_CHUNK = 500
# The least time between the starts of two commits while messages keep coming (see above).
PACE = 0.004
# How long committed messages may wait for the search index when fewer than INDEX_CHUNK wait.
INDEX_DELAY = 1.0


class Store:
    """One history file: its writer thread, its reading connection, and a `SqliteLog` per room."""

    def __init__(
        self,
        path: Path | str,
        *,
        fts: bool | None = None,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
        pace: float = PACE,
    ) -> None:
        """Open (or create) the file at `path`.

        `fts` chooses the search: FTS5 where this SQLite has it (None), or the word-by-word
        fallback (False).  `factory` makes the writing connection (tests make one that fails).
        `pace` is the least time between two commits' starts under load (0: no wait).
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
            rooms = database.rooms(self._reader)
            self.token_key = database.token_key(self._reader)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(
                f"The message store {self.path} cannot be opened: {error}."
            ) from error
        self._rooms: dict[str, RoomRow] = rooms
        self._logs: dict[str, SqliteLog] = {}
        self._by_number: dict[int, SqliteLog] = {}
        self.pace = pace
        self._last_start = float("-inf")  # the loop's time when the last commit began
        self._flush_timer: asyncio.TimerHandle | None = None
        # Committed messages not yet in the search index (a hint for when to index).
        self._unindexed = sum(row.mark - row.indexed for row in rooms.values()) if self.fts else 0
        self._index_timer: asyncio.TimerHandle | None = None
        self._indexing = False
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
        room_log = self._logs.get(name)
        if room_log is None:
            row = self._rooms.get(name)
            if row is None:
                # A new room gets its number in the file at once (a millisecond, once a room),
                # on the writer thread, which owns the writing connection.
                number = self._executor.submit(self._add_room, name).result()
                row = self._rooms[name] = RoomRow(number, 0, 0)
            room_log = SqliteLog(self, name, row.number, row.mark)
            self._logs[name] = self._by_number[row.number] = room_log
        if recent is not None:
            room_log._keep_recent(recent)
        return room_log

    def _add_room(self, name: str) -> int:
        try:
            return database.add_room(self._writer, name)
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.path, error, self._writer) from error

    def _enqueue(self, entry: Entry) -> None:
        self._pending.append(entry)

    # --- writing -------------------------------------------------------------------------------

    def durable(self) -> asyncio.Future[None]:
        """The commit that makes every message appended so far durable: done when they are,
        or failed with `StoreUnavailable` (and they are void).  Not to be cancelled: it is
        shared.  Messages appended in the same turn (or while the writer paces itself) share
        one transaction."""
        loop = asyncio.get_running_loop()
        if self._pending:
            if self._waiting is None:
                self._waiting = loop.create_future()
                self._waiting.add_done_callback(_retrieve)
                # At the end of this turn at the soonest, so that the rest of the turn's
                # messages come along.
                loop.call_soon(self._flush)
            return self._waiting
        if self._in_flight is not None:
            return self._in_flight
        done = loop.create_future()
        done.set_result(None)
        return done

    async def commit(self) -> None:
        """Return once every message appended so far is durable; raise `StoreUnavailable` (and
        void them) if it cannot be."""
        await asyncio.shield(self.durable())

    def _flush(self) -> None:
        if self._in_flight is not None or self._waiting is None or self._flush_timer is not None:
            return  # the batch in flight flushes again when it is done; so does the timer
        loop = asyncio.get_running_loop()
        wait = self._last_start + self.pace - loop.time()
        if wait > 0:
            self._flush_timer = loop.call_later(wait, self._paced_flush)
            return
        self._last_start = loop.time()
        batch, self._pending = self._pending, []
        done, self._waiting = self._waiting, None
        self._in_flight = done
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)
        job.add_done_callback(functools.partial(self._written, batch, done))

    def _paced_flush(self) -> None:
        self._flush_timer = None
        self._flush()

    def _write(self, batch: list[Entry]) -> None:
        """On the writer thread: the whole batch in one transaction."""
        try:
            database.write(self._writer, batch)
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.path, error, self._writer) from error

    def _written(
        self, batch: list[Entry], done: asyncio.Future[None], job: asyncio.Future[None]
    ) -> None:
        self._in_flight = None
        error = job.exception()
        if error is None:
            by_room: dict[int, list[Message]] = {}
            for entry in batch:
                by_room.setdefault(entry.room, []).append(entry.message)
            for number, messages in by_room.items():
                self._by_number[number]._made_durable(messages)
            done.set_result(None)
            self._index_later(len(batch))
        else:
            self.failures += 1
            # The messages numbered after the failed ones are void as well: their numbers
            # follow numbers that now belong to nobody.
            self._pending = []
            marks = error.marks if isinstance(error, StoreUnavailable) else {}
            for room_log in self._logs.values():
                room_log._rewind(marks.get(room_log.room, 0))
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
        total = 0
        for name in sorted(self._rooms):
            number = self._rooms[name].number
            while True:
                deleted = await loop.run_in_executor(
                    self._executor, self._prune_chunk, number, before_ts, keep_messages, chunk
                )
                total += deleted
                if deleted < chunk:
                    break
        for room_log in self._logs.values():
            room_log._forget(before_ts, keep_messages)
        return total

    def _prune_chunk(
        self, room: int, before_ts: datetime | None, keep: int | None, chunk: int
    ) -> int:
        try:
            return database.prune_chunk(
                self._writer, room, before_ts=before_ts, keep=keep, chunk=chunk
            )
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.path, error, self._writer) from error

    # --- the search index ----------------------------------------------------------------------

    def index_backlog(self) -> None:
        """Start indexing what the search index lacks (after a start, or a migration)."""
        if self._unindexed > 0:
            self._index_now()

    async def index_all(self) -> None:
        """Bring the search index up to the newest committed message now."""
        if not self.fts:
            return
        numbers = [row.number for row in self._rooms.values()]
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._executor, self._index, numbers):
            pass

    def _index_later(self, added: int) -> None:
        """`added` messages were committed: index them soon, at once if there are many."""
        if not self.fts:
            return
        self._unindexed += added
        if self._unindexed >= INDEX_CHUNK:
            self._index_now()
        elif self._index_timer is None and not self._indexing:
            self._index_timer = asyncio.get_running_loop().call_later(INDEX_DELAY, self._index_now)

    def _index_now(self) -> None:
        if self._index_timer is not None:
            self._index_timer.cancel()
            self._index_timer = None
        if self._indexing or not self.fts:
            return
        self._indexing = True
        self._unindexed = 0
        numbers = [row.number for row in self._rooms.values()]
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._index, numbers)
        job.add_done_callback(self._indexed)

    def _index(self, numbers: list[int]) -> bool:
        """On the writer thread: a chunk of each room; whether any room has more to index."""
        more = False
        try:
            for number in numbers:
                more |= database.index_some(self._writer, number) == INDEX_CHUNK
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.path, error, self._writer) from error
        return more

    def _indexed(self, job: asyncio.Future[bool]) -> None:
        self._indexing = False
        error = job.exception()
        if error is not None:
            # The messages are safe; only the index lags, and a search reads past its end.
            log.warning("The search index of %s could not be updated: %s", self.path, error)
            self._index_later(1)
        elif job.result():
            self._index_later(INDEX_CHUNK)
        elif self._unindexed:
            self._index_later(0)

    # --- reading -------------------------------------------------------------------------------

    @property
    def reader(self) -> sqlite3.Connection:
        return self._reader

    # --- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is pending (if it can) and index it, then stop the writer thread and close
        the file, so that the next start has nothing to catch up on."""
        self.pace = 0.0  # what is left goes now
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
            self._flush()
        try:
            await self.commit()
            await self.index_all()
        finally:
            self.close()

    async def search(self, room: int, text: str, limit: int) -> list[Message]:
        """`database.search` on the searching thread, so a long scan never holds up the loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._searcher, self._search, room, text, limit
        )

    def _search(self, room: int, text: str, limit: int) -> list[Message]:
        # The reading connection is the loop thread's: the search thread has one of its own.
        try:
            if self._search_connection is None:
                self._search_connection = database.connect(self.path)
                database.add_fallback_search(self._search_connection)
            return database.search(self._search_connection, room, text, limit, fts=self.fts)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(
                f"The message store {self.path} cannot be searched: {error}."
            ) from error

    def close(self) -> None:
        """Stop the threads (after the work they have) and close the connections."""
        for timer in (self._flush_timer, self._index_timer):
            if timer is not None:
                timer.cancel()
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


def _make_private(path: Path) -> None:
    """Create the history file readable by its owner only (what people said is theirs, not the
    machine's other users'); an existing one is left as its owner set it."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
