"""Shared fixtures (a real tcpchat server on loopback, in a thread of its own), the hypothesis
profiles, and the coverage floor that only a run of the whole suite is held to.

Hypothesis: the `fast` profile (few examples) is for working locally, `ci` (many) for CI; the
environment variable HYPOTHESIS_PROFILE picks one, and it defaults to `ci` where CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings
from support.running import RunningServer

from tcpchat.server.config import ServerConfig

settings.register_profile("fast", max_examples=30)
settings.register_profile("ci", max_examples=300)
settings.load_profile(
    os.environ.get(
        "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI", "").lower() == "true" else "fast"
    )
)


def _lift_the_coverage_floor(config: pytest.Config) -> None:
    """The floor (`--cov-fail-under` in pyproject.toml) is for the whole suite: a run of some of
    the tests (a file, `-k`, `-m "not slow"`) covers less by design and is not failed for it."""
    coverage = config.pluginmanager.getplugin("_cov")
    if coverage is not None:
        coverage.options.cov_fail_under = None


def pytest_configure(config: pytest.Config) -> None:
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        _lift_the_coverage_floor(config)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        _lift_the_coverage_floor(items[0].config)


@pytest.fixture
def server_loop() -> str:
    """The event loop the test servers run on; a module overrides this to run on both."""
    return "asyncio"


@pytest.fixture
def start_server(server_loop: str) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with ServerConfig fields as keyword arguments; all are stopped at the end."""
    running: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        # Every test client comes from 127.0.0.1, so the per-address limits are off unless a
        # test sets them (test_limits.py does, and checks the defaults).
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "name": "testserver",
            "max_per_address": None,
            "connect_rate": None,
        }
        settings.update(overrides)
        server = RunningServer(ServerConfig(**settings), server_loop).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def chat(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A server with default settings."""
    return start_server()
