"""The server's settings derive every limit themselves (tcpchat.server.config).

A `ServerConfig` built directly, as the tests and an embedding program do, must behave as the
one `tcpchat serve` builds: the flood burst follows the rate, and the longest line read follows
the longest message, whatever the characters cost on the wire.
"""

from __future__ import annotations

import json

import pytest
from support import TIMEOUT
from support.chat import join, next_of, say

from tcpchat.defaults import DEFAULT_LINE_LIMIT
from tcpchat.server.config import ServerConfig
from tcpchat.server.flood import FloodControl


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines_sent_at_once(config: ServerConfig) -> int:
    """How many lines one member may send at once before its reading is slowed."""
    pace = FloodControl(config.flood_limits(), Clock()).pace("192.0.2.1")
    assert pace is not None
    sent = 0
    while pace.for_line() == 0.0:
        sent += 1
    return sent


@pytest.mark.parametrize(("rate", "burst"), [(20, 60), (5, 15), (0.1, 1), (100, 300)])
def test_the_burst_is_three_seconds_of_the_rate(rate: float, burst: int) -> None:
    assert lines_sent_at_once(ServerConfig(rate=rate)) == burst


def test_a_burst_given_is_kept() -> None:
    assert lines_sent_at_once(ServerConfig(rate=5, burst=40)) == 40


def test_the_line_limit_follows_max_text_and_a_given_one_is_kept() -> None:
    assert ServerConfig().effective_line_limit == DEFAULT_LINE_LIMIT
    assert ServerConfig(max_text=10_000).effective_line_limit == 12 * 10_000 + 1024
    assert ServerConfig(max_text=10_000, line_limit=500).effective_line_limit == 500


@pytest.mark.parametrize("character", ["é", "\U0001f600"])
def test_the_longest_message_is_read_whole_however_it_is_escaped(start_server, character):
    """json.dumps escapes every non-ASCII character: "é" as 6 bytes, an emoji as 12."""
    server = start_server(max_text=10_000, byte_rate=0)  # 120 KB would wait for the byte rate
    alice, _ = join(server, "alice")
    bob, _ = join(server, "bob")
    alice.expect("joined")
    text = character * 10_000
    line = json.dumps(say(text, "long")).encode() + b"\n"
    assert len(line) > DEFAULT_LINE_LIMIT
    alice.send_raw(line)
    assert alice.expect("ack", TIMEOUT)["id"] == "long"  # not `line_too_long`
    assert next_of(bob, "message", TIMEOUT)["text"] == text
