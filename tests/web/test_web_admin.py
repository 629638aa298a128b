"""The operator's page in a real Chromium, against a real `tcpchat serve --web`: the secret link
from the welcome message, the members with how they came, and a kick that asks first and says
what it will do.  Names are shown as text, never as HTML."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import TIMEOUT
from support.browser import NO_PLAYWRIGHT
from support.webserver import WebServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

Screenshot = Callable[..., Path]


def operator_link(server: WebServer) -> str:
    """The link the welcome message gives the operator."""
    assert server.process is not None
    line = server.process.wait_for_line(lambda line: "/admin#" in line)
    found = re.search(r"(http://\S+/admin#\S+)", line)
    assert found is not None, line
    return found.group(1)


def test_the_operator_kicks_a_member_after_a_confirmation_that_names_them(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    server.join_plain("carol")
    page.goto(operator_link(server))
    expect(page.locator("#admin-status")).to_have_text("connected", timeout=TIMEOUT * 1000)
    assert "#" not in page.url  # the secret left the address bar
    members = page.locator("#admin-members")
    expect(members.locator("[data-name=alice]")).to_contain_text("tcp")
    expect(members.locator("[data-name=carol]")).to_contain_text("plain")
    screenshot(page, "members")

    members.locator("[data-name=alice] .kick").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    page.locator("#kick-reason").fill("spamming")
    expect(page.locator("#confirm-text")).to_contain_text("This removes alice")
    expect(page.locator("#confirm-text")).to_contain_text("spamming")
    screenshot(page, "confirm")
    page.locator("#confirm-ok").click()
    expect(page.locator("#admin-result")).to_contain_text("Removed alice.")
    expect(members.locator("[data-name=alice]")).to_have_count(0)
    shutdown = alice.read_json()
    while shutdown["type"] != "shutdown":
        shutdown = alice.read_json()
    assert shutdown["reason"] == "kicked" and "spamming" in shutdown["message"]


def test_a_cancelled_ban_does_nothing_and_a_wrong_link_is_told_so(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    server.join("alice")
    link = operator_link(server)
    page.goto(link)
    page.locator("#admin-members [data-name=alice] .ban").click()
    expect(page.locator("#confirm-text")).to_contain_text("This bans 127.0.0.1")
    expect(page.locator("#confirm-text")).to_contain_text("alice")
    page.locator("#confirm-cancel").click()
    expect(page.locator("#confirm")).to_be_hidden()
    expect(page.locator("#admin-count")).to_contain_text("1")
    expect(page.locator("#admin-bans")).not_to_contain_text("127.0.0.1")

    wrong = page.context.new_page()
    wrong.goto(link.rsplit("#", 1)[0] + "#not-the-secret")
    expect(wrong.locator("#admin-status")).to_contain_text("not the operator's")
    screenshot(wrong, "wrong-link")


def test_a_hostile_server_name_and_kick_reason_are_text(
    page: Page, tmp_path: Path, screenshot: Screenshot
) -> None:
    """Names on the operator's page are a member's or the server's: the server's may hold any
    printable text (`--name`), and a kick reason is typed there and shown back."""
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    server = WebServer(tmp_path, extra=("--name", hostile)).start()
    try:
        server.join("alice")
        page.goto(operator_link(server))
        expect(page.locator("body")).to_contain_text(hostile)
        page.locator("#admin-members [data-name=alice] .kick").click()
        page.locator("#kick-reason").fill(hostile)
        expect(page.locator("#confirm-text")).to_contain_text(hostile)
        assert page.locator("img").count() == 0
        assert page.title() != "pwned"
        screenshot(page, "hostile")
    finally:
        server.close()
