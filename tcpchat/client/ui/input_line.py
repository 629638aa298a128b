"""The chat screen's input line beyond typing: what shows beside it, a line kept back to ask about
it, pastes, long messages in pieces, and the scrollback view it opens.

The screen (`screen.ChatScreen`) owns the prompt and the connection; this owns what the person
sees of their own line: the count of characters as the server's limit nears and `away` at its
right, the question before a message goes as many (the line waits in the input until Enter is
pressed again, as `splitting` says), the note after a paste, and PageUp's scrollback view.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.application import get_app, in_terminal, run_in_terminal
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.formatted_text import AnyFormattedText, FormattedText
from prompt_toolkit.key_binding import KeyBindings

from tcpchat.client.ui.commands import Typed, parse_typed
from tcpchat.client.ui.input_keys import input_keys
from tcpchat.client.ui.local_commands import Quit, Reply
from tcpchat.client.ui.personal import Personal
from tcpchat.client.ui.render import Fragments, render_notice
from tcpchat.client.ui.scrollback import Scrollback, read_back
from tcpchat.client.ui.splitting import (
    ASK_ABOVE,
    count_hint,
    split_note,
    split_question,
    split_text,
)
from tcpchat.client.ui.state import ChatState
from tcpchat.protocol import Dm, Say


def message_text(command: Typed | None) -> str | None:
    """The text a typed command sends as a message (`say`, `/msg`, `/me`, `/r`, `/quit TEXT`)."""
    return command.text if isinstance(command, (Say, Dm, Reply, Quit)) else None


class InputLine:
    """The input line's companions; `show` prints a line above it, `state` has the limit."""

    def __init__(
        self,
        show: Callable[[Fragments], None],
        state: ChatState,
        scrollback: Scrollback,
        personal: Personal,
    ) -> None:
        self.show = show
        self.state = state
        self.scrollback = scrollback
        self.personal = personal
        self.draft = ""  # what the next prompt starts with: a line kept back to ask about it
        self._asked = ""  # the line asked about: Enter again sends it
        self._held: list[Callable[[], None]] | None = None  # lines for the chat after the view

    def keys(self) -> KeyBindings:
        return input_keys(self.read_back, self.pasted)

    def beside(self) -> AnyFormattedText:
        """Right of the input line: the count of characters near the limit, and `away`."""
        buffer = get_app().layout.get_buffer_by_name(DEFAULT_BUFFER)
        text = message_text(parse_typed(buffer.text if buffer else "")) or ""
        return FormattedText(count_hint(text, self.state.max_text) + self.personal.hint())

    def next_draft(self) -> str:
        """What the next prompt starts with (once)."""
        draft, self.draft = self.draft, ""
        return draft

    def ask_first(self, typed: str, command: Typed | None) -> bool:
        """True when `typed` would go as more than ASK_ABOVE messages and was not asked about
        yet: it is kept for the next prompt, and the question shown."""
        text = message_text(command)
        if text is None:
            return False
        pieces = len(split_text(text, self.state.max_text))
        if pieces <= ASK_ABOVE or typed == self._asked:
            return False
        self._asked = self.draft = typed
        self.show(render_notice(split_question(pieces, self.state.max_text)))
        return True

    def pieces(self, text: str) -> list[str]:
        """`text` as the messages it goes as (said when more than one)."""
        pieces = split_text(text, self.state.max_text) or [text]
        if len(pieces) > 1:
            self.show(render_notice(split_note(len(pieces), self.state.max_text)))
        return pieces

    def pasted(self, lines: int) -> None:
        if lines > 1:
            self.show(render_notice(
                f"{lines} pasted lines wait in the input line: Enter sends them as one "
                "message, Ctrl-C drops them."
            ))  # fmt: skip

    def held(self, render: Callable[[], None]) -> bool:
        """True when `render`, which prints a line in the chat, waits for the scrollback view
        to end: printing it meanwhile would leave the view's screen and come back, a flicker
        for each line of a busy room (the view shows the line at its end)."""
        if self._held is None:
            return False
        self._held.append(render)
        return True

    async def read_back(self) -> None:
        """The scrollback view, over the chat until the person leaves it (PageUp); then the
        lines that came meanwhile, in the chat."""
        self._held = []
        chat = get_app()  # the view has the chat's colours
        try:
            async with in_terminal():
                await read_back(self.scrollback, chat.style, chat.color_depth)
        finally:
            held, self._held = self._held, None
        if held:

            def print_held() -> None:
                for render in held:
                    render()

            run_in_terminal(print_held)
