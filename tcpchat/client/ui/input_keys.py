"""Keys of the chat screen's input line beyond prompt_toolkit's own: Tab that cycles, Escape that
cancels a Ctrl-R search, Enter that tells a paste from a person, and PageUp for the scrollback
(the keys typed behind it go to the scrollback view).

- Tab inserts the first match at once and the next on each further Tab (Shift-Tab goes back), as
  in irssi and weechat; prompt_toolkit's own first Tab only lists the matches when they differ.
- Escape in a Ctrl-R search cancels it and gives the line back, as Ctrl-C and Ctrl-G do there
  (prompt_toolkit's Escape takes the line found, as readline's does): a search left either way
  never leaves the chat, and never replaces what was being typed.
- A terminal without bracketed paste sends a pasted text as if typed, its line breaks as Enter.
  An Enter with more keys already waiting behind it, or one that follows such an Enter within
  PASTE_GAP, is part of a paste: it becomes a line break in the input instead of sending, so a
  paste waits in the input line as with bracketed paste, and the screen says so (`pasted`).
  No person types a key behind Enter in the same read from the terminal, nor two lines 50 ms apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus, is_searching
from prompt_toolkit.input.typeahead import store_typeahead
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.search import stop_search

PASTE_GAP = 0.05  # seconds: an Enter this soon after a pasted line break is pasted too


def input_keys(
    read_back: Callable[[], Coroutine[Any, Any, None]], pasted: Callable[[int], None]
) -> KeyBindings:
    """The bindings: `read_back` shows the scrollback (PageUp); `pasted` is told how many lines
    a paste left in the input line, once it has ended."""
    keys = KeyBindings()
    typing = has_focus(DEFAULT_BUFFER)
    last_pasted_break = [float("-inf")]
    settle: list[asyncio.TimerHandle] = []

    @keys.add("tab", filter=typing)
    def _complete(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.complete_state:
            buffer.complete_next()
        else:
            buffer.start_completion(select_first=True)

    @keys.add("escape", filter=is_searching, eager=True)
    def _cancel_search(event: KeyPressEvent) -> None:
        stop_search()

    @keys.add("enter", filter=typing)
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        waiting = any(key.key != Keys.CPRResponse for key in event.key_processor.input_queue)
        now = time.monotonic()
        if not waiting and now - last_pasted_break[0] > PASTE_GAP:
            buffer.validate_and_handle()
            return
        buffer.insert_text("\n")
        last_pasted_break[0] = now
        for handle in settle:
            handle.cancel()
        settle[:] = [
            asyncio.get_running_loop().call_later(
                PASTE_GAP, lambda: pasted(buffer.text.rstrip("\n").count("\n") + 1)
            )
        ]

    @keys.add("pageup", filter=typing)
    def _scrollback(event: KeyPressEvent) -> None:
        # Keys typed behind PageUp are the view's: it takes them as typeahead when it starts.
        queue = event.key_processor.input_queue
        ahead = [key for key in queue if key.key != Keys.CPRResponse]
        for key in ahead:
            queue.remove(key)
        store_typeahead(event.app.input, ahead)
        event.app.create_background_task(read_back())

    return keys
