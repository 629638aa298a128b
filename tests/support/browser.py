"""The system's Chromium, driven by Playwright for Python, for the web client's tests.

Playwright is only ever pointed at the Chromium the machine has (Debian's package `chromium`,
which `.ci/run` installs): it never downloads a browser of its own, so the tests run on a machine
with no internet. Every wait is bounded by the tests' TIMEOUT, Playwright's included (its own
defaults are 30 s for pages and 5 s for `expect`). Tests are skipped only when Chromium or
Playwright is not installed; a browser that is installed but fails to start is an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support import TIMEOUT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

# The flags this machine's Chromium is known to work with: no sandbox (CI runs as root), no GPU,
# and none of Chromium's own traffic to Google (on a closed network each attempt is refused, many
# at a time, and slows every start). Playwright adds --headless and a fresh, temporary profile
# (its own --user-data-dir, removed when the browser closes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}

# Playwright counts in milliseconds.
WAIT_MS = TIMEOUT * 1000
# Starting Chromium is the slowest step of all (seconds on a busy two-core machine).
LAUNCH_MS = 3 * WAIT_MS


def chromium_path() -> str | None:
    """The system's Chromium, or None where it is not installed."""
    found = shutil.which("chromium")
    if found is None and os.access("/usr/bin/chromium", os.X_OK):
        found = "/usr/bin/chromium"
    return found


def chromium_version(path: str) -> str:
    """The version `chromium --version` prints, as "156.0.8078.114"."""
    printed = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=3 * TIMEOUT, check=True
    ).stdout
    found = re.search(r"\d+(?:\.\d+){3}", printed)
    assert found is not None, f"no version in {printed!r}"
    return found.group()


# The only two reasons a browser test is skipped for.
NO_PLAYWRIGHT = "Playwright for Python is not installed (pip install -e '.[test]')."
NO_CHROMIUM = "Chromium is not installed (Debian's package chromium; .ci/run installs it)."


def skip_unless_installed() -> str:
    """The path of the system's Chromium; the test is skipped if it or Playwright is missing."""
    pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    path = chromium_path()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    return path


class Chromium:
    """One headless Chromium for the whole test session; each test opens contexts of its own."""

    def __init__(self, path: str) -> None:
        from playwright.sync_api import expect, sync_playwright

        expect.set_options(timeout=WAIT_MS)
        self.path = path
        self._driver = sync_playwright().start()
        self.playwright: Playwright = self._driver
        try:
            self.browser: Browser = self.playwright.chromium.launch(
                executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=LAUNCH_MS
            )
        except BaseException:
            self._driver.stop()
            raise

    def new_context(self, phone: bool = False, **options: Any) -> BrowserContext:
        """A fresh context (own cookies, storage and cache) at desktop size, or a phone's: small,
        touch, mobile viewport rules. Its waits are bounded by the tests' TIMEOUT."""
        if phone:
            settings: dict[str, Any] = {
                "viewport": PHONE,
                "is_mobile": True,
                "has_touch": True,
                "device_scale_factor": 2,
            }
        else:
            settings = {"viewport": DESKTOP}
        settings.update(options)
        context = self.browser.new_context(**settings)
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        return context

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._driver.stop()


# A test's way to open more pages: `open_page()` at desktop size, `open_page(phone=True)` at a
# phone's; extra keyword arguments go to Playwright's `new_context`.
OpenPage = Callable[..., "Page"]


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: the folder TCPCHAT_SCREENSHOTS names (to look at them after a run,
    or keep them as CI's artefacts), else the test's own temporary folder."""
    chosen = os.environ.get("TCPCHAT_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot_name(test_name: str, label: str) -> str:
    """`test_join[phone]` and label "after" → `test_join-phone-after.png`: a file name per shot."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{test_name}-{label}" if label else test_name)
    return stem.strip("-") + ".png"


class _FolderHandler(SimpleHTTPRequestHandler):
    """The files of one folder, with extra response headers and no log lines on stderr."""

    def __init__(self, *args: Any, headers: dict[str, str], **kwargs: Any) -> None:
        self._extra_headers = headers
        super().__init__(*args, **kwargs)

    def end_headers(self) -> None:
        for name, value in self._extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path, headers: dict[str, str] | None = None) -> Iterator[str]:
    """The URL ("http://127.0.0.1:PORT/") of `folder`'s files, served from a thread while the
    block runs: a page of the test's own, on an origin other than the chat server's."""
    handler = partial(_FolderHandler, headers=headers or {}, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
