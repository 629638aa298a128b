"""The durable message store: a room's history in SQLite (stdlib `sqlite3`, WAL), one file a
server, keyed by room, written in groups by one background thread.

`Store` (log.py) owns the file and the writer thread; `Store.room(name)` gives that room's
`SqliteLog` (room_log.py), which can stand behind `room.MessageLog`; database.py is the SQL.  This package never sees a socket, a member or the
protocol's wire format: it keeps and finds `Message`s.
"""

from __future__ import annotations

from tcpchat.server.store.database import fts5_available
from tcpchat.server.store.errors import StoreUnavailable
from tcpchat.server.store.log import Store
from tcpchat.server.store.paths import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_MESSAGES, default_db_path
from tcpchat.server.store.room_log import MAX_PAGE, MAX_RESULTS, MAX_RESUME, SqliteLog

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
