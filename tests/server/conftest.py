"""Fixtures of the server's tests that need a real `redis-server` (the cluster's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.redis import RedisServer
from support.running import RunningServer

# The token bucket never paces a test's members.
HIGH_RATE = {"rate": 1e6, "burst": 10**6, "byte_rate": 0}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def cluster(redis_server, start_server) -> Callable[[int], list[RunningServer]]:
    """Start `count` servers in one cluster (Redis first, so that it stops last)."""

    def start(count: int) -> list[RunningServer]:
        return [start_server(cluster=redis_server.url, **HIGH_RATE) for _ in range(count)]

    return start
