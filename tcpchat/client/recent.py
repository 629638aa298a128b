"""Hosts and names joined before, for shell completion and the prompts' defaults.

Kept in a small JSON file in the user's config folder (`click.get_app_dir`, or
`TCPCHAT_CONFIG_DIR`).  Every failure to read or write it is ignored: it is a convenience.
"""

from __future__ import annotations

import json
from pathlib import Path

from tcpchat.files import config_dir, write_atomically

KEEP = 10


def _path() -> Path:
    return config_dir() / "recent.json"


def _load() -> dict[str, list[str]]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: [item for item in value if isinstance(item, str)]
        for key, value in data.items()
        if isinstance(value, list)
    }


def recent_hosts() -> list[str]:
    return _load().get("hosts", [])


def recent_names() -> list[str]:
    return _load().get("names", [])


def remember(host: str, name: str) -> None:
    """Put `host` and `name` first in their lists."""
    data = _load()
    for key, value in (("hosts", host), ("names", name)):
        items = [value, *(item for item in data.get(key, []) if item != value)]
        data[key] = items[:KEEP]
    try:
        write_atomically(_path(), json.dumps(data, indent=1))
    except OSError:
        pass
