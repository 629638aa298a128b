"""How counts, durations, clock times and leaves read to people: one module for every side."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tcpchat.protocol import LeaveReason
from tcpchat.words import LEAVE_WORDS, clock, counted, duration, members_online


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (0, "0 members"),
        (1, "1 member"),
        (2, "2 members"),
        (1.0, "1 member"),
        (0.5, "0.5 members"),
        (10_000_000, "10000000 members"),
    ],
)
def test_counted_takes_the_plural_except_for_one(count: float, said: str) -> None:
    assert counted(count, "member") == said


def test_counted_takes_an_irregular_plural() -> None:
    assert counted(1, "delivery", "deliveries") == "1 delivery"
    assert counted(2, "delivery", "deliveries") == "2 deliveries"


@pytest.mark.parametrize(
    ("count", "said"), [(0, "0 members online"), (1, "1 member online"), (3, "3 members online")]
)
def test_members_online(count: int, said: str) -> None:
    assert members_online(count) == said


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "1 second"),  # some time is left: never "0 seconds"
        (0.4, "1 second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (89.4, "89 seconds"),
        (90, "2 minutes"),
        (60 * 10, "10 minutes"),
        (60 * 60, "60 minutes"),
    ],
)
def test_duration_in_whole_seconds_then_whole_minutes(seconds: float, said: str) -> None:
    assert duration(seconds) == said


def test_clock_is_hours_and_minutes_in_the_local_zone() -> None:
    ts = datetime(2026, 11, 24, 9, 30, 59, tzinfo=timezone.utc)
    assert clock(ts) == ts.astimezone().strftime("%H:%M")
    assert len(clock(ts)) == 5


def test_every_leave_reason_has_its_words() -> None:
    assert set(LEAVE_WORDS) == {reason.value for reason in LeaveReason}
    assert LEAVE_WORDS[LeaveReason.SLOW] == "was dropped for not keeping up"


def test_words_imports_nothing_else_of_tcpchat() -> None:
    code = "import sys, tcpchat.words\nprint(*sorted(m for m in sys.modules if m.startswith('tcpchat')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == ["tcpchat", "tcpchat.words"]
