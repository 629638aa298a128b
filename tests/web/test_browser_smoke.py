"""The browser machinery end to end, without the chat server: Playwright drives the system's
Chromium (not a browser of its own) through a page served on loopback under the same
Content-Security-Policy the web client is served with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import Chromium, chromium_version, serve_folder

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>smoke</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/app.js" defer></script></head>
<body><p id="greeting">not yet</p><button id="go" type="button">Go</button></body>
</html>
"""

APP = """document.getElementById("go").addEventListener("click", () => {
  document.getElementById("greeting").textContent = "clicked";
});
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The URL of a two-file page (index.html, app.js) served from a thread on 127.0.0.1."""
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "app.js").write_text(APP)
    with serve_folder(tmp_path, {"Content-Security-Policy": CSP}) as url:
        yield url


def test_a_click_runs_the_pages_script_file(
    page: Page, site: str, screenshot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(site)
    expect(page.locator("#greeting")).to_have_text("not yet")
    page.click("#go")
    expect(page.locator("#greeting")).to_have_text("clicked")
    shot = screenshot(page)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.name.startswith("test_a_click")


def test_a_phone_page_is_phone_sized_and_touch(
    open_page: Callable[..., Page], site: str, screenshot: Callable[..., Path]
) -> None:
    phone = open_page(phone=True)
    phone.goto(site)
    # A mobile viewport follows the page's <meta name="viewport"> as a phone's browser does.
    width, touch = phone.evaluate("[window.innerWidth, navigator.maxTouchPoints > 0]")
    assert (width, touch) == (375, True)
    phone.tap("#go")
    assert phone.locator("#greeting").text_content() == "clicked"
    screenshot(phone, "phone")


def test_playwright_drives_the_systems_chromium(chromium: Chromium) -> None:
    assert chromium.browser.version == chromium_version(chromium.path)
