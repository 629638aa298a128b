"""The operator's line, when `tcpchat serve` runs in a terminal: commands typed on a protected
line at the bottom, with the log printed above it.

prompt_toolkit keeps the line whole while log lines arrive (they go through standard output,
which it replaces while the line is up), recalls earlier commands (Up, Ctrl-R; kept in tcpchat's
folder), and completes commands and members' names with Tab.  This module is imported only when
a person sits at the terminal: prompt_toolkit takes a while to load, and a server under a
service manager needs none of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from tcpchat.files import config_dir
from tcpchat.protocol import fold_name
from tcpchat.server import moderation

if TYPE_CHECKING:
    from tcpchat.server.chat_server import ChatServer

PROMPT = "serve› "
HISTORY_FILE = "serve-history"  # in tcpchat's folder
# Commands whose first word after the command is a member's name (/say completes names anywhere).
NAMED = ("/kick", "/ban")

log = logging.getLogger("tcpchat.console")


class OperatorLine:
    """Reads the operator's commands until Ctrl-C (which stops the server), Ctrl-D (which ends
    only the commands, as the end of piped ones does) or `close`."""

    def __init__(self, server: ChatServer, stop: Callable[[], None]) -> None:
        self.server = server
        self._stop = stop
        self.session: PromptSession[str] = PromptSession(
            history=_history(config_dir() / HISTORY_FILE),
            completer=OperatorCompleter(server),
            complete_while_typing=False,
            enable_history_search=False,
            erase_when_done=True,  # the line is printed above as it was typed, with its answer
        )
        self._asking: PromptSession[str] = PromptSession(erase_when_done=True)
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Take the line away (the server has stopped), giving the terminal back as it was."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        with patch_stdout():
            while True:
                try:
                    line = await self._prompt(self.session, PROMPT)
                except KeyboardInterrupt:
                    self._stop()
                    return
                except EOFError:  # Ctrl-D, or the terminal gone: as the end of piped commands
                    _say("No more commands; the server goes on (Ctrl-C stops it).")
                    return
                await self._carry_out(line)

    async def _carry_out(self, line: str) -> None:
        """Print `line`, then its answer (after a yes, for a command that asks)."""
        _say(PROMPT + line)
        question = moderation.question(self.server, line)
        if question is None:
            answer = moderation.carry_out(self.server, line)
        else:
            _say(question.said)
            try:
                yes = (await self._prompt(self._asking, question.ask)).strip().lower()
            except (KeyboardInterrupt, EOFError):  # a question given up on is a no
                yes = ""
            _say(question.ask + yes)
            answer = question.carry_out() if yes in ("y", "yes") else question.no
        if answer:
            _say(answer)

    @staticmethod
    async def _prompt(session: PromptSession[str], message: str) -> str:
        # The server's own signal handlers and exception handler stay in place: prompt_toolkit's
        # would remove the SIGINT handler when a prompt ends, and stop for Enter on an error.
        return await session.prompt_async(message, handle_sigint=False, set_exception_handler=False)


def _say(text: str) -> None:
    """A line for the operator, above their line while it is up."""
    print(text, flush=True)


class OperatorCompleter(Completer):
    """Tab completes the commands, members' names (after /kick, /ban, and anywhere in /say) and
    the banned addresses after /unban."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if " " not in before:
            for command in moderation.command_names():
                if command.startswith(before.lower()):
                    yield Completion(command + " ", -len(before), display=command)
            return
        command, _, arguments = before.partition(" ")
        command = command.lower()
        word = document.get_word_before_cursor(WORD=True)
        if command == "/unban" and " " not in arguments.lstrip():
            candidates = sorted(self.server.guard.bans())
        elif command == "/say" or (command in NAMED and " " not in arguments.lstrip()):
            candidates = [
                name for room in self.server.rooms.values() for name in room.sorted_names()
            ]
        else:
            return
        folded = fold_name(word)
        for candidate in candidates:
            if fold_name(candidate).startswith(folded):
                yield Completion(candidate + " ", -len(word), display=candidate)


class _KeptHistory(FileHistory):
    """The commands typed, in a file; one that cannot be written any more is left alone."""

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError:
            pass


def _history(path: Path) -> History:
    """The history of commands kept in `path`, readable by its owner only (a command may name
    an address); in memory only when the file cannot be made."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:
        log.warning(
            "The commands you type are not kept in %s (%s); Up recalls them until the server "
            "stops.",
            path,
            exc.strerror or exc,
        )
        return InMemoryHistory()
    return _KeptHistory(str(path))
