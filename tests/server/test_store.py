"""The durable store on real SQLite files in a temporary folder: numbering across restarts,
resume and history pages, search with and without FTS5, retention, group commit on the writer
thread, write failures at the store's boundary, and a writer killed with SIGKILL mid-burst."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import TIMEOUT
from support.process import Process, clean_env

from tcpchat.protocol import Message
from tcpchat.server.store import (
    MAX_RESUME,
    SqliteLog,
    Store,
    StoreUnavailable,
    default_db_path,
    fts5_available,
)
from tcpchat.server.store.database import MAX_SEQ
from tcpchat.server.store.upkeep import wipe_file

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
NO_FTS5 = pytest.mark.skipif(not fts5_available(), reason="no FTS5")
# How a search finds messages: in the FTS5 index, by testing the newest ones that the index does
# not have yet one by one, or without FTS5 at all.
SEARCHES = [
    pytest.param("indexed", id="fts5-index", marks=NO_FTS5),
    pytest.param("unindexed", id="fts5-not-yet-indexed", marks=NO_FTS5),
    pytest.param("fallback", id="fallback"),
]


def searching(path: Path, how: str, rooms: dict[str, list[str]]) -> Store:
    """A store at `path` holding `rooms`' texts, searched the way `how` says."""
    store = Store(path, fts=how != "fallback")
    for room, texts in rooms.items():
        fill(store, texts, room=room)
    if how == "indexed":
        asyncio.run(store.index_all())
    return store


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def fill(store: Store, texts: list[str], room: str = "lobby", step: float = 1.0) -> None:
    """Append and commit `texts` to `room`, one second apart from T0 on."""
    log = store.room(room)

    async def go() -> None:
        for n, text in enumerate(texts):
            log.append("alice", text, T0 + timedelta(seconds=n * step))
        await store.commit()

    asyncio.run(go())


def found(log: SqliteLog, text: str, limit: int = 20) -> list[Message]:
    return asyncio.run(log.search(text, limit))


def seqs(messages: list[Any]) -> list[int]:
    return [m.seq for m in messages]


# --- numbering ---------------------------------------------------------------------------------


def test_history_and_seq_survive_reopening(path: Path) -> None:
    store = Store(path)
    fill(store, ["one", "two", "three"])
    store.close()
    store = Store(path)
    log = store.room("lobby", recent=2)
    assert (log.seq, log.durable_seq) == (3, 3)
    assert [m.text for m in log.recent()] == ["two", "three"]
    assert log.recent()[0].ts == T0 + timedelta(seconds=1)
    fill(store, ["four"])
    assert seqs(log.history()[0]) == [1, 2, 3, 4]
    store.close()


def test_seq_is_not_reused_after_retention_deleted_the_newest(path: Path) -> None:
    store = Store(path)
    fill(store, ["old"] * 5)
    deleted = asyncio.run(store.prune(T0 + timedelta(days=2), keep_days=1))
    assert deleted == 5
    store.close()
    store = Store(path)
    log = store.room("lobby")
    assert log.seq == 5
    assert log.since(0) == ([], False)  # all five deleted: not complete
    fill(store, ["new"])
    assert seqs(log.history()[0]) == [6]
    store.close()


def test_each_room_has_its_own_seq(path: Path) -> None:
    store = Store(path)
    fill(store, ["a", "b"], room="lobby")
    fill(store, ["c"], room="#rust")
    assert (store.room("lobby").seq, store.room("#rust").seq) == (2, 1)
    assert [m.text for m in store.room("#rust").history()[0]] == ["c"]
    store.close()


def test_an_action_is_stored_as_one(path: Path) -> None:
    store = Store(path)
    log = store.room("lobby")

    async def go() -> None:
        log.append("alice", "waves", T0, me=True)
        log.append("alice", "hello", T0)
        await store.commit()

    asyncio.run(go())
    store.close()
    # Through the view the README gives operators.
    rows = (
        sqlite3.connect(path).execute("SELECT room, seq, me FROM history ORDER BY seq").fetchall()
    )
    assert rows == [("lobby", 1, 1), ("lobby", 2, 0)]
    if "me" in Message.__dataclass_fields__:
        kept = Store(path).room("lobby").history()[0]
        assert [m.me for m in kept] == [True, False]


# --- resume and history pages ------------------------------------------------------------------


def test_since_gives_what_was_missed_and_whether_that_is_all(path: Path) -> None:
    """As `MessageLog.since` says (and `MemoryLog` does): the second value is "complete"."""
    store = Store(path)
    fill(store, [f"m{n}" for n in range(1, 11)])
    log = store.room("lobby")
    assert log.since(7) == (log.history()[0][7:], True)
    assert seqs(log.since(0)[0]) == list(range(1, 11)) and log.since(0)[1] is True
    assert log.since(10) == ([], True)
    assert log.since(11) == ([], False)  # another server's history
    found, complete = log.since(2, limit=3)
    assert (seqs(found), complete) == ([8, 9, 10], False)  # the newest ones
    asyncio.run(store.prune(T0, keep_messages=4))
    found, complete = log.since(2)
    assert (seqs(found), complete) == ([7, 8, 9, 10], False)  # 3 to 6 are no longer kept
    assert log.since(6) == (found, True)
    store.close()


def test_since_gives_at_most_a_thousand(path: Path) -> None:
    store = Store(path)
    fill(store, ["x"] * (MAX_RESUME + 5))
    found, complete = store.room("lobby").since(0, limit=5000)
    assert (len(found), found[0].seq, found[-1].seq, complete) == (
        MAX_RESUME,
        6,
        MAX_RESUME + 5,
        False,
    )
    store.close()


def test_history_pages_backwards_until_there_is_no_more(path: Path) -> None:
    store = Store(path)
    fill(store, [f"m{n}" for n in range(1, 12)])
    log = store.room("lobby")
    pages = []
    before: int | None = None
    while True:
        page, more = log.history(before, limit=4)
        pages.append(seqs(page))
        if not more:
            break
        before = page[0].seq
    assert pages == [[8, 9, 10, 11], [4, 5, 6, 7], [1, 2, 3]]
    assert log.history(1) == ([], False)
    assert len(log.history(limit=10_000)[0]) == 11
    store.close()


# --- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", SEARCHES)
def test_search_finds_every_word_whole_any_case_newest_first(path: Path, how: str) -> None:
    store = searching(
        path,
        how,
        {
            "lobby": [
                "Deploy the RELEASE today",  # 1
                "release notes, then deploy",  # 2
                "released: deployment done",  # 3: neither word whole
                "Café au lait",  # 4
                "cafe latte",  # 5
                "deploy release deploy!",  # 6
                "οδοσ",  # 7: a sigma at the end of a word, written as a middle one
                "ΟΔΟΣ.Α",  # 8
            ]
        },
    )
    log = store.room("lobby")
    assert seqs(found(log, "release DEPLOY")) == [6, 2, 1]
    assert seqs(found(log, "deploy release", limit=2)) == [6, 2]
    assert seqs(found(log, "café")) == [4]
    assert seqs(found(log, "CAFÉ")) == [4]
    assert seqs(found(log, "ΟΔΟΣ")) == seqs(found(log, "οδος")) == [8, 7]
    assert found(log, "...") == []
    assert found(log, '"deploy" OR NEAR') == []  # no query syntax: words only
    store.close()


@pytest.mark.parametrize("how", SEARCHES)
def test_search_is_per_room(path: Path, how: str) -> None:
    store = searching(path, how, {"lobby": ["hello there"], "#other": ["hello again"]})
    assert [m.text for m in found(store.room("#other"), "hello")] == ["hello again"]
    store.close()


WORDS = st.sampled_from(
    [
        "a",
        "B",
        "é",
        "É",
        "1",
        "ñ",
        "ß",
        "x",
        "日",
        "\u0301",
        "Σ",
        "ς",
        " ",
        ".",
        "-",
        "'",
        "\n",
        "_",
    ]
)
TEXTS = st.lists(WORDS, min_size=1, max_size=12).map("".join).filter(str.strip)


@NO_FTS5
@given(
    texts=st.lists(TEXTS, min_size=1, max_size=8),
    newer=st.lists(TEXTS, max_size=4),
    query=TEXTS,
    limit=st.integers(1, 12),
)
def test_fts5_and_the_fallback_find_the_same(
    texts: list[str], newer: list[str], query: str, limit: int
) -> None:
    """FTS5 with all, some or none of the messages indexed finds what the fallback finds."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for how in ("indexed", "unindexed", "fallback"):
            store = searching(Path(folder) / f"{how}.sqlite3", how, {"lobby": texts})
            fill(store, newer)  # not indexed yet but for "fallback", which has no index
            results.append(seqs(found(store.room("lobby"), query, limit=limit)))
            store.close()
    assert results[0] == results[1] == results[2]


# --- retention ---------------------------------------------------------------------------------


def test_retention_by_count_and_age_in_small_chunks(path: Path) -> None:
    store = Store(path)
    fill(store, ["x"] * 1200, step=60)  # a minute apart
    log = store.room("lobby", recent=10)
    deleted = asyncio.run(store.prune(T0, keep_messages=1000, chunk=50))
    assert deleted == 200 and log.history(limit=1)[0][0].seq == 1200
    assert log.since(0)[0][0].seq == 201
    # 1200 minutes after T0, a day of 0.5 keeps the messages of the last 720 minutes.
    deleted = asyncio.run(store.prune(T0 + timedelta(minutes=1200), keep_days=0.5, chunk=50))
    assert deleted == 280  # 201 to 480
    assert log.since(0)[0][0].seq == 481
    assert asyncio.run(store.prune(T0)) == 0
    assert asyncio.run(store.prune(T0, keep_days=0, keep_messages=0)) == 0  # 0: no limit
    asyncio.run(store.prune(T0, keep_messages=3))
    assert seqs(log.recent()) == seqs(log.since(0)[0]) == [1198, 1199, 1200]
    store.close()


def test_new_messages_are_written_while_retention_runs(path: Path) -> None:
    store = Store(path)
    fill(store, ["x"] * 2000)
    log = store.room("lobby")

    async def go() -> bool:
        # The task's first chunk goes to the writer thread before this turn's commit.
        pruning = asyncio.create_task(store.prune(T0, keep_messages=1, chunk=10))
        log.append("bob", "still here", T0)
        await store.commit()
        busy = not pruning.done()
        await pruning
        return busy

    assert asyncio.run(go()), "the commit waited for the whole clean-up"
    assert [m.text for m in log.history()[0]] == ["still here"]
    store.close()


def integrity_check(store: Store) -> None:
    """FTS5's own check of its index (it raises if the index is broken)."""
    store.reader.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def in_index(store: Store, word: str) -> int:
    """How many messages the search index lists for `word` (a deleted message that was not
    taken out of the index would still be counted)."""
    store.reader.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocabulary USING fts5vocab(main, messages_fts, row)"
    )
    found = store.reader.execute("SELECT doc FROM vocabulary WHERE term = ?", (word,)).fetchone()
    return 0 if found is None else int(found[0])


@NO_FTS5
def test_retention_and_a_wipe_keep_the_search_index_true(path: Path) -> None:
    store = Store(path)
    fill(store, [f"old {n}" for n in range(1200)])
    asyncio.run(store.index_all())
    fill(store, [f"new {n}" for n in range(300)])  # 1201..1500, not indexed yet
    log = store.room("lobby")
    # Indexed and unindexed messages go in the same chunks.
    assert asyncio.run(store.prune(T0, keep_messages=100, chunk=70)) == 1400
    integrity_check(store)
    assert (in_index(store, "old"), in_index(store, "new")) == (0, 0)
    assert seqs(found(log, "new", limit=200)) == list(range(1500, 1400, -1))
    assert found(log, "old") == []
    asyncio.run(store.index_all())
    integrity_check(store)
    assert (in_index(store, "old"), in_index(store, "new")) == (0, 100)
    assert seqs(found(log, "new", limit=200)) == list(range(1500, 1400, -1))
    store.close()

    assert wipe_file(path) == 100
    store = Store(path)
    integrity_check(store)
    assert in_index(store, "new") == 0
    assert found(store.room("lobby"), "new") == []
    assert store.room("lobby").append("bob", "after the wipe", T0).seq == 1501
    store.close()


@NO_FTS5
def test_a_start_indexes_what_the_index_lacks(path: Path) -> None:
    store = Store(path, fts=False)  # as a Python without FTS5 would have left it
    fill(store, [f"word {n}" for n in range(2500)])
    store.close()
    store = Store(path)

    async def go() -> None:
        store.index_backlog()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while indexed(store) < 2500:
            assert asyncio.get_running_loop().time() < deadline, "the backlog was not indexed"
            await asyncio.sleep(0.01)

    asyncio.run(go())
    integrity_check(store)
    assert len(found(store.room("lobby"), "word", limit=200)) == 200
    store.close()


def indexed(store: Store) -> int:
    return int(store.reader.execute("SELECT MAX(indexed_seq) FROM rooms").fetchone()[0])


FIRST_LAYOUT = """
CREATE TABLE rooms (name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,
    text TEXT NOT NULL, ts INTEGER NOT NULL, me INTEGER NOT NULL DEFAULT 0, UNIQUE (room, seq)
);
CREATE INDEX messages_by_time ON messages (room, ts);
INSERT INTO rooms VALUES ('lobby', 7), ('#other', 2);
INSERT INTO messages (room, seq, sender, text, ts, me) VALUES
    ('lobby', 4, 'alice', 'kept from before', 1780000000000000, 0),
    ('lobby', 5, 'bob', 'waves', 1780000001000000, 1),
    ('#other', 2, 'carol', 'elsewhere', 1780000002000000, 0);
"""


@pytest.mark.parametrize("how", SEARCHES)
def test_a_file_of_the_first_layout_is_brought_to_this_one(path: Path, how: str) -> None:
    connection = sqlite3.connect(path)
    connection.executescript(FIRST_LAYOUT)
    connection.close()
    store = searching(path, how, {})
    lobby, other = store.room("lobby"), store.room("#other")
    assert [(m.seq, m.sender, m.text, m.me) for m in lobby.since(0)[0]] == [
        (4, "alice", "kept from before", False),
        (5, "bob", "waves", True),
    ]
    assert seqs(found(lobby, "kept")) == [4] and seqs(found(other, "elsewhere")) == [2]
    assert lobby.append("alice", "next", T0).seq == 8  # after the mark, not the newest row
    assert other.append("carol", "next", T0).seq == 3
    store.close()


def test_a_busy_writer_waits_its_pace_between_commits(path: Path) -> None:
    store = Store(path, pace=3600)
    log = store.room("lobby")

    async def go() -> None:
        log.append("alice", "first after a quiet while", T0)
        await asyncio.wait_for(store.commit(), TIMEOUT)  # at once: the writer was idle
        log.append("alice", "right behind it", T0)
        waiting = asyncio.ensure_future(store.commit())
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        assert not done, "the second commit did not wait for its pace"
        assert log.durable_seq == 1
        await asyncio.wait_for(store.aclose(), TIMEOUT)  # closing writes what waits, now
        await waiting

    asyncio.run(go())
    assert [m.text for m in Store(path).room("lobby").since(0)[0]] == [
        "first after a quiet while",
        "right behind it",
    ]


def test_a_history_file_that_cannot_be_read_is_unavailable(path: Path) -> None:
    store = Store(path)
    fill(store, ["hello"])
    log = store.room("lobby")
    store.reader.close()  # what a file gone bad under the server looks like to a read
    for read in (log.history, lambda: log.since(0)):
        with pytest.raises(StoreUnavailable, match=r"^The message store .* cannot be read: "):
            read()
    store._reader = sqlite3.connect(path)  # so that close() finds an open connection


# --- group commit and failures -----------------------------------------------------------------


class Watched(sqlite3.Connection):
    """A writing connection that records its COMMITs and their threads, and fails on demand."""

    commits: ClassVar[list[int]] = []
    failure: ClassVar[str | None] = None

    late: ClassVar[bool] = False  # fail after the COMMIT reached the file

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if sql == "COMMIT":
            if Watched.failure and not Watched.late:
                raise sqlite3.OperationalError(Watched.failure)
            Watched.commits.append(threading.get_ident())
            cursor = super().execute(sql, *args)
            if Watched.failure:
                raise sqlite3.OperationalError(Watched.failure)
            return cursor
        return super().execute(sql, *args)


@pytest.fixture
def watched() -> Iterator[type[Watched]]:
    Watched.commits, Watched.failure, Watched.late = [], None, False
    yield Watched
    Watched.commits, Watched.failure, Watched.late = [], None, False


def test_a_turn_of_messages_is_one_commit_off_the_loop_thread(
    path: Path, watched: type[Watched]
) -> None:
    store = Store(path, factory=watched)
    log = store.room("lobby")
    watched.commits.clear()

    async def member(n: int) -> int:
        message = log.append(f"m{n}", "hi", T0)
        await store.commit()
        return message.seq

    async def go() -> list[int]:
        return await asyncio.gather(*(member(n) for n in range(100)))

    assert asyncio.run(go()) == list(range(1, 101))
    assert len(watched.commits) == 1
    assert watched.commits[0] != threading.get_ident()
    assert log.durable_seq == 100
    store.close()


def test_a_failed_write_is_one_sentence_stores_nothing_and_the_next_retries(
    path: Path, watched: type[Watched]
) -> None:
    store = Store(path, factory=watched)
    log = store.room("lobby", recent=5)
    fill(store, ["kept"])

    async def send(text: str) -> int:
        message = log.append("alice", text, T0)
        await store.commit()
        return message.seq

    watched.failure = "database or disk is full"
    with pytest.raises(StoreUnavailable) as refused:
        asyncio.run(send("lost"))
    sentence = str(refused.value)
    assert sentence.endswith(".") and "\n" not in sentence and "disk is full" in sentence
    assert (log.seq, log.durable_seq, store.failures) == (1, 1, 1)
    assert [m.text for m in log.recent()] == ["kept"]

    with pytest.raises(StoreUnavailable):
        asyncio.run(store.prune(T0, keep_messages=1))
    watched.failure = None
    assert asyncio.run(send("after")) == 2  # the refused message was never sent: 2 is free
    store.close()
    again = Store(path).room("lobby")
    assert [(m.seq, m.text) for m in again.history()[0]] == [(1, "kept"), (2, "after")]


async def in_flight(store: Store) -> None:
    """Until a batch is on the writer thread, within the tests' deadline."""

    async def poll() -> None:
        while store._in_flight is None:
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT)


def test_a_commit_waits_for_the_batch_in_flight_and_closing_writes_what_is_pending(
    path: Path,
) -> None:
    store = Store(path)
    log = store.room("lobby")

    async def go() -> None:
        log.append("alice", "one", T0)
        first = asyncio.create_task(log.commit())
        await in_flight(store)
        await store.commit()  # nothing new: it waits for the batch in flight
        assert log.durable_seq == 1
        log.append("alice", "two", T0)
        await store.aclose()
        await first

    asyncio.run(go())
    assert seqs(Store(path).room("lobby").history()[0]) == [1, 2]


def test_a_commit_that_failed_late_keeps_its_numbers(path: Path, watched: type[Watched]) -> None:
    """A COMMIT can report an error after it reached the file: its `seq`s are then taken."""
    store = Store(path, factory=watched)
    log = store.room("lobby")
    watched.failure, watched.late = "disk I/O error", True
    with pytest.raises(StoreUnavailable):
        fill(store, ["in the file, though refused"])
    assert (log.seq, log.durable_seq) == (1, 1)
    watched.failure = None
    fill(store, ["next"])
    assert seqs(log.history()[0]) == [1, 2]
    store.close()


def test_messages_numbered_behind_a_failed_batch_are_refused_too(
    path: Path, watched: type[Watched]
) -> None:
    store = Store(path, factory=watched)
    log = store.room("lobby")
    watched.failure = "disk I/O error"

    async def send(text: str) -> str:
        log.append("alice", text, T0)
        try:
            await store.commit()
        except StoreUnavailable:
            return "refused"
        return "ok"

    async def go() -> list[str]:
        first = asyncio.create_task(send("first"))
        await in_flight(store)  # the first batch
        return [*await asyncio.gather(first, send("second"))]

    assert asyncio.run(go()) == ["refused", "refused"]
    assert log.seq == 0
    store.close()


def test_a_full_database_refuses_and_recovers_when_there_is_room(path: Path) -> None:
    """A real SQLITE_FULL: the file may not grow past its pages (as on a full disk)."""
    store = Store(path)
    fill(store, ["x"])
    pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
    store._writer.execute(f"PRAGMA max_page_count = {pages}")
    log = store.room("lobby")

    async def send() -> None:
        for _ in range(50):
            log.append("alice", "y" * 1000, T0)
        await store.commit()

    with pytest.raises(StoreUnavailable, match="full"):
        asyncio.run(send())
    assert log.seq == 1
    store._writer.execute("PRAGMA max_page_count = 1000000")
    asyncio.run(send())
    assert log.durable_seq == 51
    store.close()


def test_a_file_that_is_not_a_database_is_one_sentence(path: Path) -> None:
    path.write_bytes(b"this is not SQLite\n" * 100)
    with pytest.raises(StoreUnavailable) as refused:
        Store(path)
    assert str(refused.value).startswith(f"The message store {path} cannot be opened: ")
    assert "\n" not in str(refused.value)


# --- where the file lives ----------------------------------------------------------------------


def test_each_server_address_has_its_own_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(tmp_path))
    paths = {
        default_db_path(None, 1024),
        default_db_path(None, 1025),
        default_db_path("::1", 1024),
        default_db_path("127.0.0.1", 1024),
        default_db_path("a/b", 1024),
        default_db_path("a%2Fb", 1024),
    }
    assert len(paths) == 6
    assert all(p.parent == tmp_path / "history" for p in paths)


# --- the crash promise -------------------------------------------------------------------------

WRITER = """
import asyncio, sys
from datetime import datetime, timezone
from tcpchat.server.store import Store

async def main() -> None:
    store = Store(sys.argv[1])
    log = store.room("lobby")
    while True:
        sent = [log.append("bot", "burst " * 20, datetime.now(timezone.utc)) for _ in range(50)]
        await store.commit()
        print(*(m.seq for m in sent), flush=True)

asyncio.run(main())
"""


@pytest.mark.slow
def test_every_acknowledged_message_survives_sigkill_mid_burst(path: Path, tmp_path: Path) -> None:
    acked: list[int] = []
    for _ in range(2):  # killed twice: the second run starts from what the first left
        writer = Process([sys.executable, "-c", WRITER, str(path)], clean_env(tmp_path))
        try:
            first = acked[-1] if acked else 0
            enough = first + 2000
            writer.wait_for_line(lambda line, enough=enough: int(line.split()[-1]) >= enough)
            writer.popen.send_signal(signal.SIGKILL)
            writer.wait(10)
        finally:
            writer.stop()
        printed = [int(seq) for line in writer.out for seq in line.split()]
        # Messages made durable but killed before they were printed (acknowledged) are in the
        # file; a new run goes on after them, never reusing a number.
        assert printed and printed[0] > first
        assert printed == list(range(printed[0], printed[0] + len(printed)))
        acked += printed
    store = Store(path)
    log = store.room("lobby")
    kept = seqs(log.since(0, limit=MAX_RESUME)[0])
    stored = [
        row[0] for row in store.reader.execute(f"SELECT id & {MAX_SEQ} FROM messages ORDER BY id")
    ]
    assert set(acked) <= set(stored), "an acknowledged message is missing"
    assert kept[-1] == stored[-1] and log.seq >= acked[-1]
    fill(store, ["after the crash"])
    assert log.seq > max(stored)
    store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_a_new_history_file_and_its_folder_are_private(tmp_path: Path) -> None:
    """What people said is theirs, not the machine's other users'."""
    path = tmp_path / "history" / "all-1024.sqlite3"
    store = Store(path)
    store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
