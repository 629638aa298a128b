"""`tcpchat history export|wipe`: a real history file made by the store, the real command in a
subprocess (as an operator runs it), and the file read again by the store afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support import TIMEOUT
from support.process import clean_env

from tcpchat.server.store import Store, default_db_path

pytestmark = pytest.mark.slow  # a subprocess each
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)


def fill(path: Path, count: int) -> None:
    """A history file with `count` messages in the lobby, as a server leaves it."""

    async def write() -> None:
        store = Store(path)
        log = store.room("lobby")
        for n in range(count):
            log.append("alice", f"secret number {n}", NOW)
        await store.commit()
        await store.aclose()

    asyncio.run(write())


def history(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpchat", "history", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT * 4,
        env=clean_env(tmp_path / "config"),
    )


def test_export_copies_every_message_to_a_new_private_file(tmp_path: Path) -> None:
    db, out = tmp_path / "chat.db", tmp_path / "copy.db"
    fill(db, 12)
    result = history(tmp_path, "export", str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Copied 12 messages from {db} to {out}.\n"
    with sqlite3.connect(out) as copy:
        texts = [row[0] for row in copy.execute("SELECT text FROM messages ORDER BY id")]
    assert texts == [f"secret number {n}" for n in range(12)]
    if sys.platform != "win32":
        assert out.stat().st_mode & 0o777 == 0o600
    again = history(tmp_path, "export", str(out), "--db", str(db))
    assert again.returncode == 1
    assert again.stderr == f"Error: {out} exists already; choose a new file to copy to.\n"


def test_export_finds_the_file_serve_keeps_for_an_address_and_port(tmp_path: Path) -> None:
    config = tmp_path / "config"
    db = config / "history" / "127.0.0.1-4321.sqlite3"
    fill(db, 3)
    env_db = default_db_path("127.0.0.1", 4321)  # the same rule, under this test's folder
    assert env_db.name == db.name
    out = tmp_path / "copy.db"
    result = history(tmp_path, "export", str(out), "--host", "127.0.0.1", "--port", "4321")
    assert result.returncode == 0, result.stderr
    assert "Copied 3 messages" in result.stdout


def test_wipe_deletes_every_message_but_seq_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    fill(db, 5)
    refused = history(tmp_path, "wipe", "--db", str(db))  # no terminal to ask, no --yes
    assert refused.returncode == 2
    assert "give --yes to wipe when input is not a terminal." in refused.stderr
    result = history(tmp_path, "wipe", "--db", str(db), "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Deleted 5 messages from {db}.\n"
    assert b"secret number" not in db.read_bytes()  # gone from the file, not only from view

    async def reopen() -> tuple[int, list[str]]:
        store = Store(db)
        log = store.room("lobby", recent=10)
        seq, kept = log.seq, [message.text for message in log.recent()]
        await store.aclose()
        return seq, kept

    assert asyncio.run(reopen()) == (5, [])


def test_a_missing_or_foreign_file_is_one_sentence(tmp_path: Path) -> None:
    missing = history(tmp_path, "wipe", "--db", str(tmp_path / "none.db"), "--yes")
    assert missing.returncode == 1
    assert missing.stderr == f"Error: There is no history file {tmp_path / 'none.db'}.\n"
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database\n" * 100)
    result = history(tmp_path, "export", str(tmp_path / "out.db"), "--db", str(foreign))
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {foreign} cannot be read as a history file:")
    assert "Traceback" not in result.stderr
