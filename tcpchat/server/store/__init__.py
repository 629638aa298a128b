"""The durable message store: a room's history in SQLite (stdlib `sqlite3`, WAL), one file a
server, keyed by room, written in groups by one background thread.

`Store` owns the file and the writer thread; `Store.room(name)` gives that room's `SqliteLog`,
which can stand behind `room.MessageLog`.  This package never sees a socket, a member or the
protocol's wire format: it keeps and finds `Message`s.
"""

from __future__ import annotations

from tcpchat.server.store.database import fts5_available
from tcpchat.server.store.log import (
    MAX_PAGE,
    MAX_RESULTS,
    MAX_RESUME,
    SqliteLog,
    Store,
    StoreUnavailable,
)
from tcpchat.server.store.paths import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_MESSAGES, default_db_path

__all__ = [
    "DEFAULT_KEEP_DAYS",
    "DEFAULT_KEEP_MESSAGES",
    "MAX_PAGE",
    "MAX_RESULTS",
    "MAX_RESUME",
    "SqliteLog",
    "Store",
    "StoreUnavailable",
    "default_db_path",
    "fts5_available",
]
