"""The operator's console: the welcome text and the log file (tcpchat.server.console), in process."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpchat.server import console


def welcome(**overrides: Any) -> str:
    settings: dict[str, Any] = {
        "server_name": "t",
        "listening": ["127.0.0.1:4000"],
        "port": 4000,
        "all_interfaces": False,
        "max_text": 1024,
        "max_clients": None,
        "history": 50,
    }
    settings.update(overrides)
    return console.welcome_text(**settings)


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"idle_minutes": 1}, "Members silent for 1 minute are warned"),
        ({"idle_minutes": 10}, "Members silent for 10 minutes are warned"),
        ({"idle_minutes": 0.5}, "Members silent for 0.5 minutes are warned"),
        ({"max_clients": 1}, "at most 1 member;"),
        ({"max_clients": 2}, "at most 2 members;"),
        ({"history": 1}, "the last 1 message shown to joiners"),
        ({"max_text": 1}, "Messages up to 1 character;"),
    ],
)
def test_welcome_counts_read_as_english(settings: dict[str, Any], said: str) -> None:
    assert said in welcome(**settings)


# --- the log file -------------------------------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and /dev/full")


@pytest.fixture
def console_out() -> Iterator[io.StringIO]:
    """What setup_logging's console shows; the `tcpchat` logger is put back as it was after."""
    logger = logging.getLogger("tcpchat")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    out = io.StringIO()
    yield out
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


def log_to(path: Path | str, out: io.StringIO) -> logging.Logger:
    console.setup_logging(quiet=False, log_file=str(path), log_level="info", stream=out)
    return logging.getLogger("tcpchat.server")


def warnings_in(out: io.StringIO, about: str) -> list[str]:
    return [line for line in out.getvalue().splitlines() if about in line]


@posix_only
def test_an_existing_log_file_readable_by_others_is_made_private(
    tmp_path: Path, console_out: io.StringIO
) -> None:
    path = tmp_path / "server.log"
    path.write_text("yesterday\n", encoding="utf-8")
    path.chmod(0o644)
    log_to(path, console_out).info("today")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text(encoding="utf-8").startswith("yesterday\n")
    assert not warnings_in(console_out, str(path))


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_log_file_readable_by_others_that_is_not_ours_is_warned_about(
    tmp_path: Path, console_out: io.StringIO
) -> None:
    path = tmp_path / "server.log"
    path.write_text("", encoding="utf-8")
    path.chmod(0o644)
    os.chown(path, 65534, 65534)  # nobody's: not ours to change
    log_to(path, console_out)
    assert path.stat().st_mode & 0o777 == 0o644
    said = warnings_in(console_out, str(path))
    assert len(said) == 1 and "0644" in said[0] and "another user" in said[0], (
        console_out.getvalue()
    )


@posix_only
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_disk_is_one_warning_then_quiet_until_it_can_write_again(
    tmp_path: Path, console_out: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does; the path then turns back
    into a real file, as when space is freed."""
    path = tmp_path / "server.log"
    path.symlink_to("/dev/full")
    log = log_to(path, console_out)
    for number in range(20):
        log.info("record %d", number)
    said = warnings_in(console_out, str(path))
    assert len(said) == 1, console_out.getvalue()
    assert "No space left on device" in said[0]
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out + console_out.getvalue()

    real = tmp_path / "real.log"
    (tmp_path / "next").symlink_to(real)
    (tmp_path / "next").replace(path)
    log.info("after")
    said = warnings_in(console_out, str(path))
    assert len(said) == 2 and "again" in said[1], console_out.getvalue()
    written = real.read_text(encoding="utf-8")
    assert "after" in written and "again" in written
    assert real.stat().st_mode & 0o777 == 0o600


def test_welcome_gives_the_web_page_and_the_operators_link_with_its_secret() -> None:
    text = welcome(web_port=8080, operator_token="s3cret")
    assert "Or open in a browser:  http://127.0.0.1:8080/\n" in text
    assert "http://127.0.0.1:8080/admin#s3cret" in text
    assert "https://[::1]:8443/admin#t" in welcome(
        listening=["[::1]:4000"], web_port=8443, operator_token="t", tls_fingerprint="AB:CD"
    )
    assert "browser" not in welcome()


def test_welcome_says_the_server_is_part_of_a_cluster_without_its_password() -> None:
    text = welcome(cluster=("redis://:s3cret@10.0.0.5:6379/0", 3))
    assert "Part of a cluster through redis://10.0.0.5:6379/0: 3 processes alive" in text
    assert "s3cret" not in text
    assert "1 process alive" in welcome(cluster=("redis://h:1/0", 1))
