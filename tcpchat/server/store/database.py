"""The history file itself: schema, and the plain (blocking) reads and writes on one connection.

Nothing here knows about asyncio: `Store` runs the writes on its writer thread and the reads
where it is asked.

A message's row id is its room's number and its `seq` in one integer (`room << SEQ_BITS | seq`),
so the messages table is a single b-tree ordered by room, then `seq`: a page of history, a
resume and "the newest first" are range scans of the table itself, and writing a message
touches one b-tree and nothing else.  Rooms are keyed by number, so more rooms need no
migration.  Each room's high-water mark (`rooms.last_seq`) is raised before any of its messages
is deleted, so a `seq` is never given out twice, even after retention or a wipe deleted the
newest rows.

The search index (FTS5) is not written with each message: indexing a few messages per
transaction costs several times more than indexing a thousand at once (each transaction
flushes its own index segment, which must be merged later).  `index_some` adds what is missing
in large chunks and `rooms.indexed_seq` says how far it got; a search reads the index for the
messages below that mark and checks the few above it one by one, so its answer never misses a
stored message.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tcpchat.protocol import Message
from tcpchat.server.messages import SentBy
from tcpchat.server.store.words import FTS_TOKENIZER, fts_query, has_words, query_words

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# A room's messages have the row ids (room << SEQ_BITS) + 1 .. + MAX_SEQ: four trillion
# messages a room (fourteen years at ten thousand a second), two million rooms.
SEQ_BITS = 42
MAX_SEQ = (1 << SEQ_BITS) - 1
SCHEMA_VERSION = 2

# Statements, not a script: `executescript` would commit the caller's transaction first.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0,
        indexed_seq INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        ts INTEGER NOT NULL,
        me INTEGER NOT NULL DEFAULT 0,
        lineage INTEGER,
        request BLOB,
        delivered INTEGER
    )""",
    # For people reading the file with SQLite's own tools: each message with its room's name,
    # its `seq` and its time in words.
    f"""CREATE VIEW IF NOT EXISTS history AS SELECT rooms.name AS room,
        messages.id & {MAX_SEQ} AS seq, sender, text,
        strftime('%Y-%m-%d %H:%M:%f', ts / 1e6, 'unixepoch') AS time, me
        FROM messages JOIN rooms ON rooms.id = messages.id >> {SEQ_BITS}""",
    # The key that signs the rooms' tokens (see `tcpchat.server.once`), made once a file.
    """CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)""",
    """INSERT OR IGNORE INTO secrets (name, value) VALUES ('token_key', randomblob(32))""",
)

# An external-content index over messages.text: its rowid is messages.id, so "newest first"
# within a room is rowid order, and a room is a rowid range.  Without the sizes of each text
# (columnsize=0), which only ranking by relevance would need, each indexed message is one
# write fewer.
FTS_SCHEMA = f"""CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id', tokenize='{FTS_TOKENIZER}'
)"""

COLUMNS = "id, sender, text, ts, me"
# A message sent with an id also keeps who sent it (lineage, the id's digest, the ack's count).
WRITTEN = f"{COLUMNS}, lineage, request, delivered"
# How many of a room's newest messages a start reads for the ids sent lately.
SENT_LATELY_SCAN = 100_000
# Messages indexed per transaction: large enough that the index grows by few big segments.
INDEX_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One message on its way into the file: its room's number, the message as numbered, and
    who sent it with which id (None for a message without one)."""

    room: int
    message: Message
    sent_by: SentBy | None = None


def fts5_available() -> bool:
    """Whether this Python's SQLite has the FTS5 extension (most builds do)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    return True


def to_micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


def first_id(room: int) -> int:
    """The row id of `seq` 0 in `room`: its messages are the ids above, up to `+ MAX_SEQ`."""
    return room << SEQ_BITS


def message_from_row(row: tuple[Any, ...]) -> Message:
    row_id, sender, text, micros, me = row
    ts = EPOCH + timedelta(microseconds=micros)
    return Message(seq=row_id & MAX_SEQ, sender=sender, text=text, ts=ts, me=bool(me))


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
    """Create what is missing, and bring a file of the first layout (a `room` column on each
    message) to this one.  A search index made now starts empty and `index_some` fills it."""
    with transaction(connection):
        if _is_first_layout(connection):
            _migrate_first_layout(connection)
        for statement in SCHEMA:
            connection.execute(statement)
        if fts and not has_fts_table(connection):
            connection.execute(FTS_SCHEMA)
            connection.execute("UPDATE rooms SET indexed_seq = 0")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction around the body: committed at its end, rolled back if it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise


def _is_first_layout(connection: sqlite3.Connection) -> bool:
    columns = {row[1] for row in connection.execute("PRAGMA table_info(messages)")}
    return "room" in columns


def _migrate_first_layout(connection: sqlite3.Connection) -> None:
    """Copy rooms and messages into the keyed layout (inside the caller's transaction)."""
    connection.execute("DROP TABLE IF EXISTS messages_fts")
    for trigger in ("messages_fts_insert", "messages_fts_delete"):
        connection.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    connection.execute("DROP INDEX IF EXISTS messages_by_time")
    connection.execute("ALTER TABLE rooms RENAME TO rooms_first")
    connection.execute("ALTER TABLE messages RENAME TO messages_first")
    for statement in SCHEMA:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO rooms (name, last_seq) SELECT name, MAX(last_seq) FROM ("
        "SELECT name, last_seq FROM rooms_first UNION ALL "
        "SELECT room, MAX(seq) FROM messages_first GROUP BY room) GROUP BY name ORDER BY name"
    )
    connection.execute(
        f"INSERT INTO messages ({COLUMNS}) SELECT (r.id << {SEQ_BITS}) | m.seq, m.sender, "
        "m.text, m.ts, m.me FROM messages_first AS m JOIN rooms AS r ON r.name = m.room"
    )
    connection.execute("DROP TABLE messages_first")
    connection.execute("DROP TABLE rooms_first")


def has_fts_table(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'"
    ).fetchone()
    return found is not None


@dataclass(frozen=True, slots=True)
class RoomRow:
    """A room as the file knows it: its number, its high-water mark, how far it is indexed."""

    number: int
    mark: int
    indexed: int


def rooms(connection: sqlite3.Connection) -> dict[str, RoomRow]:
    """Every room with its highest `seq` ever given out: its mark, or a stored message's if
    that is higher (marks are raised only before deletes).  One look-up a room, no scan."""
    found: dict[str, RoomRow] = {}
    for number, name, mark, indexed in connection.execute(
        "SELECT id, name, last_seq, indexed_seq FROM rooms"
    ).fetchall():
        found[name] = RoomRow(number, max(mark, _newest_seq(connection, number)), indexed)
    return found


def _newest_seq(connection: sqlite3.Connection, room: int) -> int:
    base = first_id(room)
    (newest,) = connection.execute(
        "SELECT MAX(id) FROM messages WHERE id > ? AND id <= ?", (base, base + MAX_SEQ)
    ).fetchone()
    return 0 if newest is None else newest - base


def add_room(connection: sqlite3.Connection, name: str) -> int:
    """The number of the room `name`, made now if it is new (its own small transaction)."""
    with transaction(connection):
        connection.execute("INSERT OR IGNORE INTO rooms (name) VALUES (?)", (name,))
        (number,) = connection.execute("SELECT id FROM rooms WHERE name = ?", (name,)).fetchone()
    return int(number)


def write(connection: sqlite3.Connection, entries: Sequence[Entry]) -> None:
    """Insert `entries` in one transaction: all of them or none."""
    rows: list[tuple[object, ...]] = []
    for entry in entries:
        message, sent_by = entry.message, entry.sent_by
        if not 0 < message.seq <= MAX_SEQ:
            raise sqlite3.IntegrityError(f"seq {message.seq} is beyond what a room can hold")
        row = (
            first_id(entry.room) | message.seq,
            message.sender,
            message.text,
            to_micros(message.ts),
            int(message.me),
        )
        if sent_by is None:
            rows.append((*row, None, None, None))
        else:
            rows.append((*row, sent_by.lineage, sent_by.request, sent_by.delivered))
    with transaction(connection):
        connection.executemany(f"INSERT INTO messages ({WRITTEN}) VALUES ({_MARKS})", rows)


_MARKS = ", ".join("?" * len(WRITTEN.split(", ")))


def token_key(connection: sqlite3.Connection) -> bytes:
    """The file's key for signing tokens."""
    (value,) = connection.execute("SELECT value FROM secrets WHERE name = 'token_key'").fetchone()
    return bytes(value)


def sent_lately(
    connection: sqlite3.Connection, room: int, scan: int = SENT_LATELY_SCAN
) -> list[tuple[SentBy, Message]]:
    """The messages sent with an id among `room`'s newest `scan`, oldest first."""
    base, top = _range(room)
    rows = connection.execute(
        f"SELECT {COLUMNS}, lineage, request, delivered FROM (SELECT * FROM messages "
        "WHERE id > ? AND id <= ? ORDER BY id DESC LIMIT ?) WHERE request IS NOT NULL "
        "ORDER BY id",
        (base, top, scan),
    ).fetchall()
    return [(SentBy(row[5], bytes(row[6]), row[7]), message_from_row(row[:5])) for row in rows]


def rollback(connection: sqlite3.Connection) -> None:
    """Undo an open transaction; a file too broken even for that is left to SQLite's journal."""
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def index_some(connection: sqlite3.Connection, room: int, chunk: int = INDEX_CHUNK) -> int:
    """Add up to `chunk` of `room`'s oldest messages not yet in the search index; return how
    many were added (fewer than `chunk`: the room is indexed up to its newest message)."""
    base = first_id(room)
    with transaction(connection):
        (indexed,) = connection.execute(
            "SELECT indexed_seq FROM rooms WHERE id = ?", (room,)
        ).fetchone()
        last, count = connection.execute(
            "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM messages WHERE id > ? AND id <= ? "
            "ORDER BY id LIMIT ?)",
            (base + indexed, base + MAX_SEQ, chunk),
        ).fetchone()
        if count:
            connection.execute(
                "INSERT INTO messages_fts (rowid, text) "
                "SELECT id, text FROM messages WHERE id > ? AND id <= ?",
                (base + indexed, last),
            )
            connection.execute("UPDATE rooms SET indexed_seq = ? WHERE id = ?", (last - base, room))
    return int(count)


def _raise_mark(connection: sqlite3.Connection, room: int) -> None:
    """Keep the room's newest `seq` in its mark before messages go (inside a transaction)."""
    connection.execute(
        "UPDATE rooms SET last_seq = MAX(last_seq, ?) WHERE id = ?",
        (_newest_seq(connection, room), room),
    )


def _unindex(connection: sqlite3.Connection, room: int, low: int, high: int) -> None:
    """Take the messages with row ids `low`..`high` out of the search index, as far as they
    are in it (an external-content index is told each deleted row's text)."""
    if not has_fts_table(connection):
        return
    (indexed,) = connection.execute(
        "SELECT indexed_seq FROM rooms WHERE id = ?", (room,)
    ).fetchone()
    connection.execute(
        "INSERT INTO messages_fts (messages_fts, rowid, text) "
        "SELECT 'delete', id, text FROM messages WHERE id >= ? AND id <= ?",
        (low, min(high, first_id(room) + indexed)),
    )


def prune_chunk(
    connection: sqlite3.Connection,
    room: int,
    *,
    before_ts: datetime | None,
    keep: int | None,
    chunk: int,
) -> int:
    """Delete at most `chunk` of `room`'s oldest messages that are older than `before_ts` or
    beyond the newest `keep`; return how many went.  Small chunks keep each transaction (and
    the writer thread's pause for new messages) short.

    Messages go oldest first, and the age test stops at the first message young enough: one
    stamped earlier than an older message (the clock was set back) waits for the next run."""
    if before_ts is None and keep is None:
        return 0
    base = first_id(room)
    with transaction(connection):
        _raise_mark(connection, room)
        (mark,) = connection.execute("SELECT last_seq FROM rooms WHERE id = ?", (room,)).fetchone()
        oldest = connection.execute(
            "SELECT id, ts FROM messages WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (base, base + MAX_SEQ, chunk),
        ).fetchall()
        cut = to_micros(before_ts) if before_ts is not None else None
        doomed = 0
        for row_id, micros in oldest:
            too_old = cut is not None and micros < cut
            beyond = keep is not None and row_id - base <= mark - keep
            if not (too_old or beyond):
                break
            doomed += 1
        if doomed:
            low, high = oldest[0][0], oldest[doomed - 1][0]
            _unindex(connection, room, low, high)
            connection.execute("DELETE FROM messages WHERE id >= ? AND id <= ?", (low, high))
    return doomed


def wipe(connection: sqlite3.Connection) -> int:
    """Delete every message (keeping each room's mark) in one transaction; return how many."""
    with transaction(connection):
        for (room,) in connection.execute("SELECT id FROM rooms").fetchall():
            _raise_mark(connection, room)
        if has_fts_table(connection):
            connection.execute("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
        connection.execute("UPDATE rooms SET indexed_seq = last_seq")
        return int(connection.execute("DELETE FROM messages").rowcount)


def _range(room: int) -> tuple[int, int]:
    base = first_id(room)
    return base, base + MAX_SEQ


def newest(connection: sqlite3.Connection, room: int, count: int) -> list[Message]:
    """The newest `count` messages of `room`, oldest first."""
    return before(connection, room, MAX_SEQ + 1, count)


def before(connection: sqlite3.Connection, room: int, seq: int, count: int) -> list[Message]:
    """Up to `count` messages of `room` with a `seq` below `seq`: the newest of them, oldest first."""
    base, _ = _range(room)
    rows = connection.execute(
        f"SELECT {COLUMNS} FROM messages WHERE id > ? AND id < ? ORDER BY id DESC LIMIT ?",
        (base, base + min(max(seq, 0), MAX_SEQ + 1), count),
    ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


def after(connection: sqlite3.Connection, room: int, seq: int, count: int) -> list[Message]:
    """Up to `count` messages of `room` with a `seq` above `seq`: the newest of them, oldest first."""
    base, top = _range(room)
    rows = connection.execute(
        f"SELECT {COLUMNS} FROM messages WHERE id > ? AND id <= ? ORDER BY id DESC LIMIT ?",
        (base + min(max(seq, 0), MAX_SEQ), top, count),
    ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


def search(
    connection: sqlite3.Connection, room: int, text: str, count: int, *, fts: bool
) -> list[Message]:
    """Up to `count` messages of `room` holding every word of `text`, newest first.

    With FTS5, the messages the index does not have yet (the newest few) are tested one by one
    and the index answers for the rest, both in one read transaction, so that none is missed
    or found twice."""
    wanted = query_words(text)
    if not wanted or count <= 0:
        return []
    base, top = _range(room)
    joined = " ".join(wanted)
    connection.execute("BEGIN")
    try:
        indexed = 0
        if fts:
            found = connection.execute(
                "SELECT indexed_seq FROM rooms WHERE id = ?", (room,)
            ).fetchone()
            indexed = 0 if found is None else found[0]
        rows = connection.execute(
            f"SELECT {COLUMNS} FROM messages WHERE id > ? AND id <= ? "
            "AND tcpchat_has_words(text, ?) ORDER BY id DESC LIMIT ?",
            (base + indexed, top, joined, count),
        ).fetchall()
        if fts and len(rows) < count and indexed:
            rows += connection.execute(
                f"SELECT {', '.join('m.' + c for c in COLUMNS.split(', '))} FROM messages_fts "
                "JOIN messages AS m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? "
                "AND messages_fts.rowid > ? AND messages_fts.rowid <= ? "
                "ORDER BY messages_fts.rowid DESC LIMIT ?",
                (fts_query(wanted), base, base + indexed, count - len(rows)),
            ).fetchall()
    finally:
        connection.execute("COMMIT")
    return [message_from_row(row) for row in rows]


def add_fallback_search(connection: sqlite3.Connection) -> None:
    """Register the word test that `search` uses for messages outside the index."""
    connection.create_function("tcpchat_has_words", 2, has_words, deterministic=True)
