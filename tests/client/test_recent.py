"""The remembered hosts and names (tcpchat/client/recent.py): a convenience that never fails a command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tcpchat.client import recent


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "config" / "tcpchat"  # does not exist yet
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(target))
    return target


def test_nothing_remembered_before_the_first_join(folder: Path) -> None:
    assert recent.recent_hosts() == []
    assert recent.recent_names() == []
    assert not folder.exists()


def test_the_latest_comes_first_without_repeats(folder: Path) -> None:
    recent.remember("a.example", "alice")
    recent.remember("b.example", "bob")
    recent.remember("a.example", "alice")
    assert recent.recent_hosts() == ["a.example", "b.example"]
    assert recent.recent_names() == ["alice", "bob"]


def test_only_the_last_few_are_kept(folder: Path) -> None:
    for n in range(recent.KEEP + 5):
        recent.remember(f"host{n}", f"name{n}")
    assert recent.recent_hosts() == [f"host{n}" for n in reversed(range(5, recent.KEEP + 5))]


def test_the_file_is_replaced_whole_and_no_temporary_file_is_left(folder: Path) -> None:
    recent.remember("a.example", "alice")
    recent.remember("b.example", "bob")
    assert sorted(p.name for p in folder.iterdir()) == ["recent.json"]
    assert (
        json.loads((folder / "recent.json").read_text(encoding="utf-8"))["hosts"][0] == "b.example"
    )


@pytest.mark.parametrize(
    "content", ["", "not json", "[1, 2]", '{"hosts": "x"}', '{"hosts": [1, null, "ok"]}']
)
def test_a_damaged_file_reads_as_empty_or_keeps_what_is_usable(folder: Path, content: str) -> None:
    folder.mkdir(parents=True)
    (folder / "recent.json").write_text(content, encoding="utf-8")
    assert recent.recent_hosts() in ([], ["ok"])
    recent.remember("a.example", "alice")  # and remembering repairs it
    assert recent.recent_hosts()[0] == "a.example"


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="needs a folder this user cannot write"
)
def test_an_unwritable_folder_is_ignored(folder: Path) -> None:
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        recent.remember("a.example", "alice")  # no exception
        assert recent.recent_hosts() == []
    finally:
        folder.chmod(0o700)


def test_a_file_where_the_folder_should_be_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(blocker / "tcpchat"))
    recent.remember("a.example", "alice")  # no exception: works as root too
    assert recent.recent_hosts() == []
