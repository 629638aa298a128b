"""Where a server keeps its history by default, and the retention defaults."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from tcpchat.defaults import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_MESSAGES
from tcpchat.files import config_dir

__all__ = ["DEFAULT_KEEP_DAYS", "DEFAULT_KEEP_MESSAGES", "default_db_path"]


def default_db_path(host: str | None, port: int) -> Path:
    """The history file of a server listening on `host` (None: every interface) and `port`,
    in tcpchat's folder: two servers on different addresses never share one by accident.
    The host is percent-encoded, so that no two hosts give one name (`::1` is `%3A%3A1`)."""
    where = "all" if not host else quote(host, safe="")
    return config_dir() / "history" / f"{where}-{port}.sqlite3"
