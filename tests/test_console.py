"""The operator's console: the welcome text and the log file (tcpchat.console), in process."""

from __future__ import annotations

from typing import Any

import pytest

from tcpchat import console


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


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (0, "0 members"),
        (1, "1 member"),
        (2, "2 members"),
        (1.0, "1 member"),
        (10_000_000, "10000000 members"),
    ],
)
def test_counted_takes_the_plural_except_for_one(count: float, said: str) -> None:
    assert console.counted(count, "member") == said
