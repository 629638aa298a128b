"""What an operator does to a history file beside the server: copy it, and wipe it.

A copy uses SQLite's online backup, so it is consistent even while a server writes the file.
A wipe deletes every message but keeps each room's high-water mark: a `seq` is never given out
twice, so clients that remember where they were see a gap, not somebody else's old numbers.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tcpchat.server.store import database


class UpkeepError(Exception):
    """Why a copy or a wipe could not be done, in one sentence."""


def _open(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise UpkeepError(f"There is no history file {db}.")
    try:
        connection = database.connect(db)
        connection.execute("SELECT count(*) FROM messages").fetchone()
    except sqlite3.Error as error:
        raise UpkeepError(f"{db} cannot be read as a history file: {error}.") from None
    return connection


def count_messages(db: Path) -> int:
    """How many messages the file keeps."""
    connection = _open(db)
    try:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        connection.close()


def export_file(db: Path, out: Path) -> int:
    """Copy the history file `db` to the new file `out` (readable by its owner only); return
    how many messages the copy holds."""
    source = _open(db)
    try:
        try:
            os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise UpkeepError(f"{out} exists already; choose a new file to copy to.") from None
        except OSError as error:
            raise UpkeepError(f"{out} cannot be created: {error.strerror}.") from None
        target = sqlite3.connect(out)
        try:
            source.backup(target)
            return int(target.execute("SELECT count(*) FROM messages").fetchone()[0])
        except sqlite3.Error as error:
            raise UpkeepError(f"The copy to {out} failed: {error}.") from None
        finally:
            target.close()
    finally:
        source.close()


def wipe_file(db: Path) -> int:
    """Delete every message in `db`, keeping each room's high-water mark, and give the space
    back so that the words are gone from the file too; return how many were deleted."""
    connection = _open(db)
    try:
        database.create_schema(connection, fts=database.has_fts_table(connection))
        deleted = database.wipe(connection)
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(deleted)
    except sqlite3.Error as error:
        raise UpkeepError(f"{db} could not be wiped: {error}.") from None
    finally:
        connection.close()
