"""History in a real SQLite file behind a real server (in process): nothing is acknowledged or
sent before it is durable, `seq` goes on after a restart, and a store that fails refuses
messages with `unavailable` until it works again."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from support import TIMEOUT
from support.chat import expect_error, join, say, sync
from support.running import RunningServer

from tcpchat.server.store import SqliteLog


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def lobby_log(server: RunningServer) -> SqliteLog:
    assert server.server is not None
    return cast(SqliteLog, server.server.lobby.log)


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def locked(db: Path) -> Iterator[sqlite3.Connection]:
    """A second connection to the file that can hold its write lock (the store's writer then
    waits, for up to its busy timeout: a commit kept in flight)."""
    connection = sqlite3.connect(db, isolation_level=None)
    yield connection
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.close()


def test_history_and_seq_go_on_after_a_restart(
    start_server: Callable[..., RunningServer], db: Path
) -> None:
    first = start_server(db=db)
    alice, _ = join(first, "alice")
    for text in ("one", "two"):
        alice.send_json(say(text))
        assert alice.expect("ack")["seq"] in (1, 2)
    first.stop()

    second = start_server(db=db)
    bob, welcome = join(second, "bob")
    assert [(m["seq"], m["text"]) for m in welcome["history"]] == [(1, "one"), (2, "two")]
    assert welcome["seq"] == 2
    bob.send_json(say("three"))
    assert bob.expect("ack")["seq"] == 3


def test_a_resume_says_gap_only_when_something_is_missing(
    start_server: Callable[..., RunningServer], db: Path
) -> None:
    """What the server says over the wire, with the history in a file as by default."""
    server = start_server(db=db, keep_messages=3)
    alice, _ = join(server, "alice")
    for n in range(1, 6):
        alice.send_json(say(f"m{n}"))
        alice.expect("ack")

    def resume(since: int) -> tuple[list[int], bool]:
        client = server.connect()
        client.read_line()
        client.send_json({"type": "hello", "name": f"r{since}", "version": 1, "since": since})
        welcome = client.expect("welcome")
        client.close()
        return [m["seq"] for m in welcome["history"]], welcome["gap"]

    assert resume(5) == ([], False)  # nothing missed
    assert resume(3) == ([4, 5], False)
    assert resume(0) == ([1, 2, 3, 4, 5], False)
    assert resume(9) == ([], True)  # another history
    server.stop()
    pruned = start_server(db=db, keep_messages=3)  # retention at start keeps 3, 4, 5
    until(lambda: pruned.call(lambda: lobby_log(pruned).since(0)[0][0].seq) == 3)
    client = pruned.connect()
    client.read_line()
    client.send_json({"type": "hello", "name": "late", "version": 1, "since": 1})
    welcome = client.expect("welcome")
    assert ([m["seq"] for m in welcome["history"]], welcome["gap"]) == ([3, 4, 5], True)


def test_an_ack_waits_for_the_commit_and_a_joiner_meanwhile_gets_the_message_once(
    start_server: Callable[..., RunningServer], db: Path, locked: sqlite3.Connection
) -> None:
    server = start_server(db=db)
    alice, _ = join(server, "alice")
    locked.execute("BEGIN IMMEDIATE")  # the next commit waits for this lock
    alice.send_json(say("held", "a1"))
    until(lambda: server.call(lambda: lobby_log(server).seq) == 1)  # numbered, not durable

    bob, welcome = join(server, "bob")
    assert (welcome["seq"], welcome["history"]) == (0, [])
    assert alice.expect("joined")["name"] == "bob"  # and no ack yet: it is not durable
    locked.execute("COMMIT")

    assert (alice.expect("ack")["id"], lobby_log(server).durable_seq) == ("a1", 1)
    message = bob.expect("message")
    assert (message["seq"], message["text"]) == (1, "held")
    alice.send_json(say("next"))
    assert bob.expect("message")["text"] == "next"  # and not "held" again
    sync(bob)


def test_a_full_store_refuses_with_unavailable_and_recovers(
    start_server: Callable[..., RunningServer],
    db: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real SQLITE_FULL (the file may not grow past its pages, as on a full disk)."""
    caplog.set_level(logging.INFO, "tcpchat.server")
    server = start_server(db=db, max_text=20000)
    alice, _ = join(server, "alice")
    bob, _ = join(server, "bob")
    alice.expect("joined")
    writer = lobby_log(server)._store._writer
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages}")

    for number in range(3):
        alice.send_json(say("x" * 15000, f"full{number}"))
        expect_error(alice, "unavailable", f"full{number}")
    failures = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(failures) == 1, "the operator is told once"
    sync(bob)  # nothing reached the others

    writer.execute("PRAGMA max_page_count = 1000000")
    alice.send_json(say("x" * 15000, "full0"))  # the same id again: a new message now
    ack = alice.expect("ack")
    assert (ack["id"], ack["seq"]) == ("full0", 1)
    assert bob.expect("message")["seq"] == 1
    assert any("can be written again" in r.getMessage() for r in caplog.records)


def test_an_announcement_waits_for_the_commit_too(
    start_server: Callable[..., RunningServer], db: Path, locked: sqlite3.Connection
) -> None:
    server = start_server(db=db)
    alice, _ = join(server, "alice")
    assert server.server is not None
    chat = server.server
    locked.execute("BEGIN IMMEDIATE")
    server.call(lambda: chat.announce("maintenance at noon"))
    sync(alice)  # not sent while it is not durable
    locked.execute("COMMIT")
    message = alice.expect("message")
    assert (message["from"], message["seq"]) == ("server", 1)


def test_retention_runs_when_the_server_starts(
    start_server: Callable[..., RunningServer], db: Path
) -> None:
    first = start_server(db=db)
    alice, _ = join(first, "alice")
    for text in ("old", "older", "newest"):
        alice.send_json(say(text))
        alice.expect("ack")
    first.stop()

    second = start_server(db=db, keep_messages=1)
    bob, _ = join(second, "bob")

    def pages() -> list[str]:
        bob.send_json({"type": "history", "id": "h"})
        return [m["text"] for m in bob.expect("history")["messages"]]

    until(lambda: pages() == ["newest"])


def test_history_and_search_read_the_file(
    start_server: Callable[..., RunningServer], db: Path
) -> None:
    server = start_server(db=db)
    alice, _ = join(server, "alice")
    for text in ("Lunch at noon?", "no thanks", "lunch is ready"):
        alice.send_json(say(text))
        alice.expect("ack")
    alice.send_json({"type": "search", "text": "LUNCH", "id": "s"})
    results = alice.expect("results")
    assert (results["id"], [m["seq"] for m in results["messages"]]) == ("s", [3, 1])
    alice.send_json({"type": "history", "before": 3, "limit": 1, "id": "h"})
    page = alice.expect("history")
    assert ([m["text"] for m in page["messages"]], page["more"]) == (["no thanks"], True)


def test_the_console_shows_an_action_as_plain_mode_does(
    start_server: Callable[..., RunningServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server()
    alice, _ = join(server, "alice")
    with caplog.at_level(logging.INFO, logger="tcpchat.server"):
        alice.send_json({"type": "say", "text": "waves", "me": True})
        alice.expect("ack")
    assert "* alice waves" in caplog.messages
