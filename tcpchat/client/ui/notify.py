"""Not missing anything: whether the person is looking at the chat, and what the screen does
about what comes while they are not: a line where the new messages start, their count in the
window's title, and for a mention or a private message the bell and a desktop notification.

Where the person is comes from the terminal's focus reports (CSI ? 1004 h, which xterm, VTE,
kitty, iTerm2, WezTerm, Windows Terminal and tmux with `focus-events on` send); before the first
report, or on a terminal that never sends one, `away_after` minutes without a key count as away;
and `/away` counts as away until `/back`, wherever the focus is and whatever is typed.
Every part is a setting (`marker`, `title`, `bell`, `notify`).  This writes only escape
sequences that change no cell of the screen, so it never disturbs the prompt's drawing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from prompt_toolkit.application import Application
from prompt_toolkit.input.ansi_escape_sequences import ANSI_SEQUENCES
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import Output

from tcpchat.client.settings import Settings
from tcpchat.client.ui.render import Fragments
from tcpchat.protocol import Message, Private, strip_unsafe

FOCUS_IN, FOCUS_OUT = "\x1b[I", "\x1b[O"
REPORT_FOCUS, STOP_REPORTING_FOCUS = "\x1b[?1004h", "\x1b[?1004l"
# xterm's title stack: the title the window had comes back when the chat ends.
SAVE_TITLE, RESTORE_TITLE = "\x1b[22;0t", "\x1b[23;0t"
MARKER: Fragments = [("class:marker", "── new messages ──")]
NOTICE_LENGTH = 200  # characters of a message a desktop notification shows

# prompt_toolkit does not know the focus reports: each is read as one key (Ignore, with the
# sequence as its data) rather than as Escape, `[` and `I` typed into the input line.
ANSI_SEQUENCES.setdefault(FOCUS_IN, Keys.Ignore)
ANSI_SEQUENCES.setdefault(FOCUS_OUT, Keys.Ignore)


def notification_kind(setting: str, env: Mapping[str, str] = os.environ) -> str | None:
    """Which desktop notification the terminal takes: `osc9` (iTerm2, WezTerm, Ghostty, Windows
    Terminal, ConEmu), `osc777` (foot, urxvt, VTE's terminals), or None (unknown: unasked,
    an unknown sequence is at best ignored).  `auto` asks the environment; tmux passes neither
    on, so inside it only a setting of `osc9` or `osc777` sends them."""
    if setting != "auto":
        return None if setting == "off" else setting
    if env.get("TMUX"):
        return None
    program = env.get("TERM_PROGRAM", "")
    if program in ("iTerm.app", "WezTerm", "ghostty") or "WT_SESSION" in env or "ConEmuPID" in env:
        return "osc9"
    if env.get("TERM", "").startswith(("foot", "rxvt-unicode")) or "VTE_VERSION" in env:
        return "osc777"
    return None


class Attention:
    """Whether the person is here, and the marker, title, bell and notifications that follow."""

    def __init__(
        self,
        settings: Settings,
        server: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.server = server  # the server's name: it may change on a rejoin
        self.clock = clock
        self.focused: bool | None = None  # None until the terminal reports its focus
        self.last_key = clock()
        self.declared = False  # `/away`: away until `/back`, whatever the focus and keys say
        self.unseen = 0  # messages counted in the title since the person went away
        self.marked = False  # the marker is printed for this time away
        self.output: Output | None = None
        self.saved_title = False  # the window's own title is on the terminal's stack

    # --- where the person is ---------------------------------------------------------------

    @property
    def away(self) -> bool:
        if self.declared:
            return True
        if self.focused is not None:
            return not self.focused
        idle = self.settings.away_after * 60
        return idle > 0 and self.clock() - self.last_key >= idle

    def pressed(self) -> None:
        """A key: the person is here (whatever the focus reports said)."""
        self.last_key = self.clock()
        if self.focused is False:
            self.focused = True
        self._back()

    def focus(self, focused: bool) -> None:
        self.focused = focused
        if focused:
            self._back()

    def declare(self, away: bool) -> None:
        """`/away` (True) or `/back` (False)."""
        self.declared = away
        self._back()

    def _back(self) -> None:
        if not self.away and (self.unseen or self.marked):
            self.unseen = 0
            self.marked = False
            self._show_title()

    # --- what comes meanwhile --------------------------------------------------------------

    def react(self, heard: Message | Private | None, important: bool) -> list[Fragments]:
        """Ring, notify and count for a message `heard` (`important`: a mention or a private
        message); the lines to show before it (the marker, the first time while away)."""
        if heard is None:
            return []
        if important and self.settings.bell:
            self._write(lambda output: output.bell())
        if not self.away:
            return []
        lines = [] if self.marked or not self.settings.marker else [MARKER]
        self.marked = True
        if important or not self.settings.quiet:
            self.unseen += 1
            self._show_title()
        kind = notification_kind(self.settings.notify)
        if important and kind:
            self._notify(kind, heard)
        return lines

    def title(self) -> str:
        """`(3) tcpchat — lobby`: the unread count while away, and the chat's name."""
        return f"({self.unseen}) {self.name()}" if self.unseen else self.name()

    def name(self) -> str:
        return f"tcpchat — {strip_unsafe(self.server())}"

    # --- the terminal ----------------------------------------------------------------------

    def key_bindings(self) -> KeyBindings:
        """The terminal's focus reports, wherever the focus is on the screen."""
        keys = KeyBindings()

        @keys.add(Keys.Ignore)
        def _focus_report(event: KeyPressEvent) -> None:
            data = event.key_sequence[0].data
            if data in (FOCUS_IN, FOCUS_OUT):
                self.focus(data == FOCUS_IN)

        return keys

    def start(self, app: Application[str], output: Output) -> None:
        """Ask for focus reports, keep the window's title to give back, show ours."""
        app.key_processor.before_key_press += lambda _: self.pressed()
        self.output = output
        output.write_raw(REPORT_FOCUS)
        if self.settings.title:
            output.write_raw(SAVE_TITLE)
            self.saved_title = True
        self._show_title()

    def stop(self) -> None:
        if self.output is not None:
            self.output.write_raw(STOP_REPORTING_FOCUS)
            if self.saved_title:  # even if `/set title off` came since: ours may still show
                self.output.write_raw(RESTORE_TITLE)
            self.output.flush()
        self.output = None

    def _show_title(self) -> None:
        if self.settings.title:
            self._write(lambda output: output.set_title(self.title()))

    def _notify(self, kind: str, heard: Message | Private) -> None:
        said = " (private)" if isinstance(heard, Private) else ""
        body = strip_unsafe(f"{heard.sender}{said}: {heard.text}")[:NOTICE_LENGTH]
        body = body.replace("\n", " ").replace("\t", " ")
        if kind == "osc777":
            title = self.name().replace(";", ",")
            sequence = f"\x1b]777;notify;{title};{body}\x1b\\"
        else:
            sequence = f"\x1b]9;{body}\x1b\\"
        self._write(lambda output: output.write_raw(sequence))

    def _write(self, write: Callable[[Output], None]) -> None:
        """Write to the terminal, if the chat is on it."""
        if self.output is None:
            return
        write(self.output)
        self.output.flush()
