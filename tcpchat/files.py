"""tcpchat's own folder and its files: where it keeps recent hosts, TLS pins and certificates.

Shared by the server (its self-signed certificate) and the client (pins, recent hosts).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


def config_dir() -> Path:
    """tcpchat's per-user folder (it may not exist yet): `TCPCHAT_CONFIG_DIR`, or Click's app dir."""
    return Path(os.environ.get("TCPCHAT_CONFIG_DIR") or click.get_app_dir("tcpchat"))


def write_atomically(path: Path, text: str) -> None:
    """Write a sibling file, then rename it over `path`: a reader (a shell completing in another
    terminal, a second client) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".recent-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
