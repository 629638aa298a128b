"""The store's one error: the history file cannot be used now, in one sentence for a person."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tcpchat.server.messages import LogUnavailable
from tcpchat.server.store import database


class StoreUnavailable(LogUnavailable):
    """The history file cannot be written (or opened) now; `str()` is one sentence for a person.

    `marks` are the rooms' high-water marks read back from the file after the failure, when it
    could still be read: a COMMIT that reported an error may yet have reached the disk, and
    then its numbers are taken, not given out again."""

    def __init__(self, sentence: str, marks: dict[str, int] | None = None) -> None:
        super().__init__(sentence)
        self.marks = marks or {}


def unavailable(
    path: Path, error: BaseException, connection: sqlite3.Connection
) -> StoreUnavailable:
    try:
        marks = {name: row.mark for name, row in database.rooms(connection).items()}
    except sqlite3.Error:
        marks = {}
    return StoreUnavailable(f"The message store {path} cannot be written: {error}.", marks)
