"""The chat screen's actions, history and search against a real server: `/me` reaches the
others as an action, `/history` pages back from the oldest message shown, `/search` finds words,
and both print apart from the live messages."""

from __future__ import annotations

from test_ui import chat_screen, in_thread, run


def test_me_sends_an_action_that_both_sides_show_as_one(chat):
    async def main() -> None:
        bob = await in_thread(chat.join, "bob")
        async with chat_screen(chat.port) as ui:
            await in_thread(bob.expect, "joined")
            ui.type("/me waves\r")
            message = await in_thread(bob.expect, "message")
            assert (message["from"], message["text"], message.get("me")) == ("alice", "waves", True)
            await ui.wait_line("* alice waves", "✓ delivered to 1")
            bob.send_json({"type": "say", "text": "nods", "id": "1", "me": True})
            await ui.wait_line("* bob nods")
            await ui.quit()

    run(main())


def test_history_pages_back_and_search_finds_words_set_apart_from_live_messages(start_server):
    server = start_server(history=1)  # the welcome shows only the newest

    async def main() -> None:
        bob = await in_thread(server.join, "bob")
        for n, text in enumerate(["lunch at noon", "meeting at two", "lunch again?"]):
            bob.send_json({"type": "say", "text": text, "id": str(n)})
            await in_thread(bob.expect, "ack")
        async with chat_screen(server.port) as ui:
            await ui.wait_line("bob: lunch again?")
            assert not ui.has_line("meeting at two")
            ui.type("/history 5\r")
            await ui.wait_line("── 2 earlier messages ──")
            title = ui.lines.index("── 2 earlier messages ──")
            assert "bob: lunch at noon" in ui.lines[title + 1]
            assert "bob: meeting at two" in ui.lines[title + 2]
            assert ui.lines[title + 3] == "── the oldest message kept ──"
            ui.type("/history\r")
            await ui.wait_line("── no earlier messages ──")
            ui.type("/search LUNCH\r")
            await ui.wait_line("── search “LUNCH”: 2 found, newest first ──")
            found = ui.lines.index("── search “LUNCH”: 2 found, newest first ──")
            assert ui.lines[found + 1].endswith("bob: lunch again?")
            assert ui.lines[found + 2].endswith("bob: lunch at noon")
            assert ui.lines[found + 1][:4].isdigit()  # dated: 2026-…
            ui.type("/search nothing here\r")
            await ui.wait_line("nothing found")
            await ui.quit()

    run(main())
