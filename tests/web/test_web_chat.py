"""The chat page in a real Chromium, against a real `tcpchat serve --web` process, beside TCP JSON
and plain (`nc`-style) members of the same room: joining, talking, delivery marks, text that
looks like HTML, history on scroll, a server restart, and a WebSocket from another origin.

The page's hooks: `#name`, `#password`, `#join`; `#messages` holding `.message` elements with
`data-seq` (one's own also `.own`, with a `.delivery` mark; private messages and notices are
other elements of the list); `#members`, `#member-count`; `#input` (Enter sends); `#search`,
`#results` (one element per message found); `#status` ("connected" / "reconnecting…").
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import TIMEOUT
from support.browser import NO_PLAYWRIGHT, WAIT_MS, serve_folder
from support.webserver import WebServer
from support.wire import LineClient

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
]

Screenshot = Callable[..., Path]


def join_page(page: Page, server: WebServer, name: str) -> None:
    """Open the chat page and join as `name`, as a person does: type the name, press Join."""
    page.goto(server.url)
    page.fill("#name", name)
    page.click("#join")
    expect(page.locator("#status")).to_have_text("connected")


def say(page: Page, text: str) -> None:
    """Type `text` in the input and press Enter."""
    page.fill("#input", text)
    page.press("#input", "Enter")


def seqs_shown(page: Page) -> list[int]:
    """The `seq` of every message in the list, top to bottom (pending ones have none yet)."""
    shown: list[Any] = page.locator("#messages .message").evaluate_all(
        "els => els.map(e => e.dataset.seq).filter(s => s !== undefined && s !== '')"
    )
    return [int(seq) for seq in shown]


def next_message(client: LineClient) -> dict[str, Any]:
    """The next `message` event a JSON member receives (joins, leaves and the like skipped)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = client.read_json(max(0.01, deadline - time.monotonic()))
        if event["type"] == "message":
            return event


_ids = itertools.count()


def say_tcp(client: LineClient, text: str, **fields: Any) -> int:
    """Say `text` as a JSON member; its `seq`, from the `ack`."""
    said = f"say-{next(_ids)}"  # each its own: a repeated id is not delivered again
    client.send_json({"type": "say", "text": text, "id": said, **fields})
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = client.read_json(max(0.01, deadline - time.monotonic()))
        if event["type"] == "ack" and event["id"] == said:
            return int(event["seq"])


def test_a_web_member_talks_with_a_tcp_member_and_a_plain_member(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice, carol = server.join("alice"), server.join_plain("carol")
    join_page(page, server, "bob")
    expect(page.locator("#member-count")).to_contain_text("3")
    for name in ("alice", "bob", "carol"):
        expect(page.locator("#members")).to_contain_text(name)

    say_tcp(alice, "hello from a terminal")
    carol.send_line("hello from nc")
    messages = page.locator("#messages .message")
    expect(messages.filter(has_text="hello from a terminal")).to_contain_text("alice")
    expect(messages.filter(has_text="hello from nc")).to_contain_text("carol")

    say(page, "hello from a browser")
    assert next_message(alice)["text"] == "hello from nc"
    heard = next_message(alice)
    assert (heard["from"], heard["text"]) == ("bob", "hello from a browser")
    carol.read_until(lambda line: line.endswith("bob: hello from a browser"))
    expect(page.locator("#input")).to_have_value("")
    screenshot(page, "desktop")


def test_the_chat_on_a_phone(
    open_page: Callable[..., Page], server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    phone = open_page(phone=True)
    join_page(phone, server, "bob")
    say_tcp(alice, "can you read this on a phone?")
    say(phone, "yes, and type back")
    expect(phone.locator("#messages .message.own")).to_contain_text("yes, and type back")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scrolling"
    screenshot(phone, "phone")


def test_ones_own_message_is_marked_delivered_to_the_others(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice, carol = server.join("alice"), server.join_plain("carol")
    join_page(page, server, "bob")
    say(page, "did you both get this?")
    own = page.locator("#messages .message.own").filter(has_text="did you both get this?")
    expect(own.locator(".delivery")).to_have_text("✓ delivered to 2")
    heard = next_message(alice)
    expect(own).to_have_attribute("data-seq", str(heard["seq"]))
    carol.read_until(lambda line: line.endswith("bob: did you both get this?"))
    screenshot(page, "delivered")


INJECTED = "<img src=x onerror=\"document.title='pwned'\">"


def test_html_in_a_message_or_a_name_is_shown_as_text(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    refused_by_csp: list[str] = []
    page.on("console", lambda entry: refused_by_csp.append(entry.text))
    alice = server.join("alice")
    page.goto(server.url)
    page.fill("#name", INJECTED)  # names are letters and digits: the server refuses it
    page.click("#join")
    expect(page.locator("#name")).to_be_editable()
    assert page.locator("img").count() == 0
    page.fill("#name", "bob")
    page.click("#join")
    expect(page.locator("#status")).to_have_text("connected")

    say_tcp(alice, INJECTED)
    say_tcp(alice, INJECTED, me=True)
    alice.send_json({"type": "dm", "to": "bob", "text": INJECTED})
    say(page, INJECTED)
    shown = page.locator("#messages > *").filter(has_text=INJECTED)  # private ones included
    expect(shown).to_have_count(4)
    assert page.locator("img").count() == 0
    assert page.title() != "pwned"
    assert not [line for line in refused_by_csp if "Content Security Policy" in line]
    screenshot(page, "injected")


def test_older_messages_load_as_one_scrolls_up(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    sent = [say_tcp(alice, f"message {n}") for n in range(1, 301)]
    join_page(page, server, "bob")
    assert min(seqs_shown(page)) > sent[0], "the welcome brings only the recent ones"
    # Scroll the list to its top again and again, as a person does, until the first message shows.
    page.wait_for_function(
        """first => {
            const list = document.getElementById("messages");
            list.scrollTop = 0;
            return list.querySelector(`.message[data-seq="${first}"]`) !== null;
        }""",
        arg=sent[0],
        polling=100,
        timeout=3 * WAIT_MS,
    )
    assert seqs_shown(page) == sent, "every message once, in order"
    screenshot(page, "history")


def test_search_finds_the_messages_with_every_word(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    say_tcp(alice, "the blue kettle is on")
    say_tcp(alice, "a red kettle")
    say_tcp(alice, "blue sky")
    join_page(page, server, "bob")
    page.fill("#search", "kettle BLUE")
    page.press("#search", "Enter")
    found = page.locator("#results > *")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("the blue kettle is on")
    screenshot(page, "search")


def test_after_a_server_restart_the_page_resumes_with_nothing_lost_or_doubled(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    join_page(page, server, "bob")
    before = [say_tcp(alice, f"before {n}") for n in range(5)]
    expect(page.locator(f'#messages .message[data-seq="{before[-1]}"]')).to_be_visible()

    server.stop()
    expect(page.locator("#status")).to_have_text("reconnecting…")
    say(page, "typed while the server was down")
    screenshot(page, "reconnecting")
    server.start()
    alice = server.join("alice")
    after = [say_tcp(alice, f"after {n}") for n in range(5)]

    expect(page.locator("#status")).to_have_text("connected", timeout=6 * WAIT_MS)
    expect(page.locator(f'#messages .message[data-seq="{after[-1]}"]')).to_be_visible()
    own = page.locator("#messages .message.own").filter(has_text="typed while the server")
    expect(own).to_have_attribute("data-seq", re.compile(r"^[0-9]+$"))
    expect(own).to_have_count(1)
    shown = seqs_shown(page)
    room = history(alice)
    assert sorted(shown) == [m["seq"] for m in room], "the page shows each message once"
    assert [m["text"] for m in room].count("typed while the server was down") == 1
    assert set(before + after) <= set(shown)
    screenshot(page, "resumed")


def history(client: LineClient) -> list[dict[str, Any]]:
    """The room's newest messages, oldest first, as the server keeps them."""
    client.send_json({"type": "history", "limit": 500, "id": "all"})
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = client.read_json(max(0.01, deadline - time.monotonic()))
        if event["type"] == "history" and event["id"] == "all":
            return list(event["messages"])


def test_a_websocket_from_another_origin_is_refused(
    page: Page, server: WebServer, tmp_path: Path
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url, origin="http://evil.example", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    for origin in (server.origin, None):  # its own page, and a program that is not a browser
        with connect(server.ws_url, origin=origin, open_timeout=TIMEOUT) as socket:
            socket.send(json.dumps({"type": "hello", "name": "probe", "version": 1}))
            assert json.loads(socket.recv(TIMEOUT))["type"] == "welcome"

    # A page of another site, in the browser, that tries to use the chat's WebSocket.
    site = tmp_path / "elsewhere"
    site.mkdir()
    (site / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><script src="probe.js"></script><p id="out">…</p>'
    )
    (site / "probe.js").write_text(
        f'const ws = new WebSocket("{server.ws_url}");\n'
        'ws.onopen = () => { document.getElementById("out").textContent = "open"; };\n'
        'ws.onclose = () => { if (document.getElementById("out").textContent !== "open") '
        'document.getElementById("out").textContent = "refused"; };\n'
    )
    with serve_folder(site) as elsewhere:
        page.goto(elsewhere)
        expect(page.locator("#out")).to_have_text("refused")


# Records each desktop notification the page raises (the browser's own, wrapped before the
# page's scripts run; a headless browser shows none), and lets the test put the tab in the
# background as a person switching tabs does (headless Chromium never hides a tab itself).
RECORD_NOTIFICATIONS = """
let hidden = false;
Object.defineProperty(document, 'hidden', { get: () => hidden });
Object.defineProperty(document, 'visibilityState', { get: () => hidden ? 'hidden' : 'visible' });
window.__setHidden = (value) => { hidden = value; document.dispatchEvent(new Event('visibilitychange')); };
window.__shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.__shown.push([title, options.body]); }
};
Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission });
window.Notification.requestPermission = (...args) => Real.requestPermission(...args);
"""


def test_a_hidden_tab_counts_unread_and_notifies_of_a_mention_and_a_private_message(
    page: Page, server: WebServer, screenshot: Screenshot
) -> None:
    alice = server.join("alice")
    page.context.grant_permissions(["notifications"], origin=server.origin)
    page.add_init_script(RECORD_NOTIFICATIONS)
    join_page(page, server, "bob")
    page.evaluate("window.__setHidden(true)")

    say_tcp(alice, "lunch, anyone?")
    say_tcp(alice, "bob, are you there?")
    alice.send_json({"type": "dm", "to": "bob", "text": "psst"})
    expect(page.locator("#messages")).to_contain_text("psst")
    assert re.match(r"^\(3\) ", page.title()), page.title()
    shown = page.evaluate("window.__shown")
    assert [body for _, body in shown] == ["bob, are you there?", "psst"]
    assert all("alice" in title for title, _ in shown)

    page.evaluate("window.__setHidden(false)")
    expect(page).not_to_have_title(re.compile(r"^\(\d+\)"))
    expect(page.locator("#new-divider")).to_be_visible()
    screenshot(page, "back")


def test_the_keyboard_alone_completes_a_name_sends_and_a_screen_reader_hears_it(
    page: Page, server: WebServer
) -> None:
    alice = server.join("alice")
    join_page(page, server, "bob")
    page.focus("#input")
    page.keyboard.type("al")
    page.keyboard.press("Tab")
    expect(page.locator("#input")).to_have_value("alice: ")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Enter")
    heard = next_message(alice)
    assert (heard["from"], heard["text"]) == ("bob", "alice: line one\nline two")
    say_tcp(alice, "heard you")
    expect(page.locator("#announcer")).to_contain_text("heard you")  # the polite live region
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"
