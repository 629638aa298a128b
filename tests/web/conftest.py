"""Fixtures for the web client's tests: one Chromium for the session, a fresh page per test, and
screenshots named after the test (support/browser.py has the why of each setting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support.browser import (
    Chromium,
    OpenPage,
    screenshot_dir,
    screenshot_name,
    skip_unless_installed,
)
from support.webserver import WebServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """The system's Chromium, headless, started once (skipped where it or Playwright is missing)."""
    browser = Chromium(skip_unless_installed())
    yield browser
    browser.close()


@pytest.fixture
def open_page(chromium: Chromium) -> Iterator[OpenPage]:
    """Open pages, each in a new context (desktop size, or `phone=True`); all closed at the end."""
    contexts: list[BrowserContext] = []

    def open_(phone: bool = False, **options: Any) -> Page:
        context = chromium.new_context(phone=phone, **options)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: OpenPage) -> Page:
    """A blank page at desktop size (1280x800), in a context of its own."""
    return open_page()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Path]:
    """`screenshot(page, "phone")` saves the page as `<test name>-phone.png` in the folder
    TCPCHAT_SCREENSHOTS names (the test's tmp_path without it) and returns the file's path."""
    folder = screenshot_dir(tmp_path)

    def take(page: Page, label: str = "", full_page: bool = False) -> Path:
        path = folder / screenshot_name(request.node.name, label)
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    """A real `tcpchat serve --web` process (support/webserver.py), stopped at the end."""
    running = WebServer(tmp_path)
    try:
        yield running.start()
    finally:
        running.close()
