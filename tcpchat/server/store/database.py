"""The history file itself: schema, and the plain (blocking) reads and writes on one connection.

Nothing here knows about asyncio: `Store` runs the writes on its writer thread and the reads
where it is asked.  Rows are keyed by room, so that more rooms need no migration; each room's
high-water mark (`rooms.last_seq`) is written in the same transaction as its messages and never
lowered, so a `seq` is never given out twice, even after retention deleted the newest rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tcpchat.protocol import Message
from tcpchat.server.store.words import FTS_TOKENIZER, fts_query, has_words, query_words

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    me INTEGER NOT NULL DEFAULT 0,
    UNIQUE (room, seq)
);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (room, ts);
"""

# An external-content index over messages.text, kept in step by triggers; its rowid is
# messages.id, which grows with `seq` inside a room, so "newest first" is rowid order.
FTS_SCHEMA = f"""
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id', tokenize='{FTS_TOKENIZER}'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
"""

COLUMNS = "seq, sender, text, ts, me"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message on its way into the file: its room and the message as numbered."""

    room: str
    message: Message
    me: bool = False


def fts5_available() -> bool:
    """Whether this Python's SQLite has the FTS5 extension (most builds do)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    return True


def to_micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


def message_from_row(row: tuple[Any, ...]) -> Message:
    seq, sender, text, micros, me = row
    ts = EPOCH + timedelta(microseconds=micros)
    return Message(seq=seq, sender=sender, text=text, ts=ts, me=bool(me))


def connect(
    path: Path | str, *, factory: type[sqlite3.Connection] = sqlite3.Connection
) -> sqlite3.Connection:
    """A connection in WAL mode with `synchronous=FULL`.

    FULL syncs the WAL on every commit, so a committed (and therefore acknowledged) message
    survives a power cut as well as a killed process; NORMAL would survive only the latter.
    Its cost is one fsync per commit, paid on the writer thread once per group of messages.
    """
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=factory
    )
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def create_schema(connection: sqlite3.Connection, *, fts: bool) -> None:
    """Create what is missing; an index made now is built from the rows already there."""
    connection.executescript(SCHEMA)
    if fts and not has_fts_table(connection):
        connection.executescript(FTS_SCHEMA)


def has_fts_table(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'"
    ).fetchone()
    return found is not None


def high_water(connection: sqlite3.Connection) -> dict[str, int]:
    """Each room's highest `seq` ever given out: its mark, or a stored row if that is higher.

    Every room with messages has a mark (they are written in one transaction), so this is one
    index look-up a room, never a scan of the messages."""
    marks: dict[str, int] = {}
    for room, mark in connection.execute("SELECT name, last_seq FROM rooms").fetchall():
        (stored,) = connection.execute(
            "SELECT MAX(seq) FROM messages WHERE room = ?", (room,)
        ).fetchone()
        marks[room] = max(mark, stored or 0)
    return marks


def write(connection: sqlite3.Connection, entries: Sequence[Entry]) -> None:
    """Insert `entries` and raise their rooms' marks in one transaction: all of it or none."""
    marks: dict[str, int] = {}
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(
            "INSERT INTO messages (room, seq, sender, text, ts, me) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    entry.room,
                    entry.message.seq,
                    entry.message.sender,
                    entry.message.text,
                    to_micros(entry.message.ts),
                    int(entry.me),
                )
                for entry in entries
            ],
        )
        for entry in entries:
            marks[entry.room] = entry.message.seq
        connection.executemany(
            "INSERT INTO rooms (name, last_seq) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
            marks.items(),
        )
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise


def rollback(connection: sqlite3.Connection) -> None:
    """Undo an open transaction; a file too broken even for that is left to SQLite's journal."""
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def prune_chunk(
    connection: sqlite3.Connection,
    room: str,
    *,
    before_ts: datetime | None,
    keep: int | None,
    chunk: int,
) -> int:
    """Delete at most `chunk` of `room`'s oldest messages that are older than `before_ts` or
    beyond the newest `keep`; return how many went.  Small chunks keep each transaction (and
    the writer thread's pause for new messages) short."""
    conditions: list[str] = []
    arguments: list[Any] = [room]
    if before_ts is not None:
        conditions.append("ts < ?")
        arguments.append(to_micros(before_ts))
    if keep is not None:
        # Messages are only ever deleted oldest first, so the newest `keep` are the `seq`s
        # just below the mark: no count over the room is needed.
        mark = connection.execute("SELECT last_seq FROM rooms WHERE name = ?", (room,)).fetchone()
        if mark is not None:
            conditions.append("seq <= ?")
            arguments.append(mark[0] - keep)
    if not conditions:
        return 0
    connection.execute("BEGIN IMMEDIATE")
    try:
        deleted = connection.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE room = ? AND "
            f"({' OR '.join(conditions)}) ORDER BY seq LIMIT ?)",
            (*arguments, chunk),
        ).rowcount
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    return deleted


def newest(connection: sqlite3.Connection, room: str, count: int) -> list[Message]:
    """The newest `count` messages of `room`, oldest first."""
    rows = connection.execute(
        f"SELECT {COLUMNS} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?", (room, count)
    ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


def before(connection: sqlite3.Connection, room: str, seq: int, count: int) -> list[Message]:
    """Up to `count` messages of `room` with a `seq` below `seq`: the newest of them, oldest first."""
    rows = connection.execute(
        f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        (room, seq, count),
    ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


def after(connection: sqlite3.Connection, room: str, seq: int, count: int) -> list[Message]:
    """Up to `count` messages of `room` with a `seq` above `seq`: the newest of them, oldest first."""
    rows = connection.execute(
        f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
        (room, seq, count),
    ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


def search(
    connection: sqlite3.Connection, room: str, text: str, count: int, *, fts: bool
) -> list[Message]:
    """Up to `count` messages of `room` holding every word of `text`, newest first."""
    wanted = query_words(text)
    if not wanted:
        return []
    rows: Iterable[tuple[Any, ...]]
    if fts:
        rows = connection.execute(
            f"SELECT {', '.join('m.' + c for c in COLUMNS.split(', '))} FROM messages_fts "
            "JOIN messages AS m ON m.id = messages_fts.rowid "
            "WHERE messages_fts MATCH ? AND m.room = ? ORDER BY messages_fts.rowid DESC LIMIT ?",
            (fts_query(wanted), room, count),
        )
    else:
        rows = connection.execute(
            f"SELECT {COLUMNS} FROM messages WHERE room = ? AND tcpchat_has_words(text, ?) "
            "ORDER BY seq DESC LIMIT ?",
            (room, " ".join(wanted), count),
        )
    return [message_from_row(row) for row in rows]


def add_fallback_search(connection: sqlite3.Connection) -> None:
    """Register the word test that `search` uses without FTS5."""
    connection.create_function("tcpchat_has_words", 2, has_words, deterministic=True)
