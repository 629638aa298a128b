"""Tab completion on the chat screen: commands after `/`, and member names anywhere.

The names come from a `NameSource` (the session's state), so completion needs no connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from tcpchat.client.ui.commands import COMMANDS
from tcpchat.protocol import fold_name


class NameSource(Protocol):
    """Who may be completed, and who is typing (never offered)."""

    @property
    def name(self) -> str: ...

    def names_by_recency(self) -> list[str]: ...


class ChatCompleter(Completer):
    """Tab completes commands after `/`, and member names anywhere (recent speakers first)."""

    def __init__(self, names: NameSource) -> None:
        self.names = names

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and " " not in before:
            for command, (_, meta) in COMMANDS.items():
                if command.startswith(before.lower()):
                    yield Completion(
                        command + " ", -len(before), display=command, display_meta=meta
                    )
            return
        word = document.get_word_before_cursor(WORD=True)
        if not word and not before.lower().startswith(("/msg ", "/nick ")):
            return
        folded = fold_name(word)
        me = fold_name(self.names.name)
        # A name that starts the line addresses that person (`bob: `); elsewhere a space ends it.
        addressing = not document.current_line_before_cursor[: -len(word) or None].strip()
        separator = ": " if addressing and not before.startswith("/") else " "
        for name in self.names.names_by_recency():
            if fold_name(name).startswith(folded) and fold_name(name) != me:
                yield Completion(name + separator, -len(word), display=name)
