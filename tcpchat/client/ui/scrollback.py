"""The scrollback view: the session's lines on a full screen of their own, to read back and search
without leaving the chat.

PageUp on the chat screen opens it, as PageUp scrolls the conversation in irssi and weechat; the
input line waits underneath with what was typed.  The chat itself stays printed above the input
line into the terminal's own scrollback, so a terminal's scrolling and copying keep working; this
view adds what they cannot do: search (`/` or Ctrl-R, then `n` and `N`), and reading back while
the terminal is a tmux pane or a console without scrollback.  It runs in the terminal's
alternate screen, which the terminal gives back untouched when the view ends (q, Escape, Ctrl-C
or PageDown past the end).  Lines that arrive meanwhile are added at its end, and printed on the
chat screen once the view ends.  No network here: the lines are what the screen showed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition, has_focus
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.input import Input, create_input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    BufferControl,
    ConditionalContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    Window,
)
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import BaseStyle, Style, merge_styles

from tcpchat.client.session_log import SessionLog
from tcpchat.client.ui.render import STYLE, Fragments, fragments_text, screen_rows

SCROLLBACK_LINES = 5000  # lines the view keeps; older ones are only in the terminal (and --log)


class Scrollback:
    """The lines shown on the chat screen, the newest last; at most SCROLLBACK_LINES, and all of
    them in the session's `log` when there is one."""

    def __init__(self, log: SessionLog | None = None, size: int = SCROLLBACK_LINES) -> None:
        self.lines: deque[Fragments] = deque(maxlen=size)
        self.added = 0  # lines ever added: the view notices new ones by this
        self.log = log

    def add(self, fragments: Fragments) -> None:
        self.lines.append(fragments)
        self.added += 1
        if self.log is not None:
            self.log.write(fragments_text(fragments))


class ScrollbackView:
    """The lines as rows of the terminal's width, a window onto them, and a search line.

    `top` is the first row shown; None follows the end (new lines keep the newest in view).
    """

    def __init__(
        self,
        scrollback: Scrollback,
        input: Input | None = None,
        style: BaseStyle | None = None,
        depth: ColorDepth | None = None,
    ) -> None:
        self.scrollback = scrollback
        self._rows: list[Fragments] = []
        self._starts: list[int] = []  # each line's first row
        self._made_for: tuple[int, int] = (-1, -1)  # (width, lines added) the rows were made for
        self.top: int | None = None
        self.found: int | None = None  # the line of the last match, highlighted
        self.said = ""  # what the last search found or not
        self.search = Buffer(multiline=False, accept_handler=self._searched)
        self.searching = False
        self._lines = Window(
            FormattedTextControl(self._visible, focusable=True, show_cursor=False), wrap_lines=False
        )
        search_line = Window(
            BufferControl(self.search, input_processors=[BeforeInput("search back: ")]), height=1
        )
        self.app: Application[None] = Application(
            layout=Layout(
                HSplit(
                    [
                        self._lines,
                        Window(FormattedTextControl(self._status), height=1),
                        ConditionalContainer(search_line, Condition(lambda: self.searching)),
                    ]
                ),
                focused_element=self._lines,
            ),
            key_bindings=self._keys(),
            style=merge_styles([style or STYLE, Style.from_dict({"found": "reverse"})]),
            color_depth=depth,
            full_screen=True,
            input=input,
            refresh_interval=0.5,  # lines that arrive meanwhile show up at the end
        )

    # --- rows -----------------------------------------------------------------------------

    def _size(self) -> tuple[int, int]:
        size = self.app.output.get_size()
        return size.columns, max(1, size.rows - 1 - self.searching)

    def _make_rows(self) -> None:
        """Rows for the lines at the width of now: only for the lines added since last time (and
        without those the scrollback let go), unless the width changed."""
        width, _ = self._size()
        made_width, made_added = self._made_for
        new = self.scrollback.added - made_added
        if width == made_width and new == 0:
            return
        lines = self.scrollback.lines
        if width != made_width or new > len(lines):
            self._rows, self._starts = [], []
            new = len(lines)
        dropped = len(self._starts) + new - len(lines)  # the oldest, let go meanwhile
        if dropped > 0:
            cut = self._starts[dropped] if dropped < len(self._starts) else len(self._rows)
            del self._rows[:cut]
            self._starts = [start - cut for start in self._starts[dropped:]]
            if self.found is not None:
                self.found = self.found - dropped if self.found >= dropped else None
            if self.top is not None:
                self.top = max(0, self.top - cut)
        for n in range(len(lines) - new, len(lines)):
            self._starts.append(len(self._rows))
            self._rows += screen_rows(lines[n], width)
        self._made_for = (width, self.scrollback.added)

    def _first_row(self) -> int:
        _, height = self._size()
        last = max(0, len(self._rows) - height)
        return last if self.top is None else min(self.top, last)

    def _visible(self) -> StyleAndTextTuples:
        self._make_rows()
        _, height = self._size()
        first = self._first_row()
        found = range(0)
        if self.found is not None and self.found < len(self._starts):
            end = self._starts[self.found + 1] if self.found + 1 < len(self._starts) else None
            found = range(self._starts[self.found], end or len(self._rows))
        shown: StyleAndTextTuples = []
        for n in range(first, min(first + height, len(self._rows))):
            extra = " class:found" if n in found else ""
            shown += [(style + extra, text) for style, text in self._rows[n]]
            shown.append(("", "\n"))
        return shown

    def _status(self) -> StyleAndTextTuples:
        self._make_rows()
        _, height = self._size()
        first = self._first_row()
        last = min(first + height, len(self._rows))
        where = f"rows {first + 1}–{last} of {len(self._rows)}" if self._rows else "nothing yet"
        keys = "PgUp PgDn ↑ ↓ · / search · n N · q back to the chat"
        said = f" · {self.said}" if self.said else ""
        return [("class:asked-title", f" scrollback: {where}{said} · {keys} ")]

    # --- moving ---------------------------------------------------------------------------

    def scroll(self, rows: int) -> None:
        """Move by `rows` (up when negative); down past the end leaves the view."""
        self._make_rows()
        _, height = self._size()
        last = max(0, len(self._rows) - height)
        first = self._first_row()
        if rows > 0 and first >= last:
            self.app.exit()
            return
        top = max(0, min(last, first + rows))
        self.top = None if top >= last else top

    def _show_line(self, line: int) -> None:
        """Scroll so that `line` is a third of the way down."""
        self._make_rows()
        _, height = self._size()
        self.top = max(0, self._starts[line] - height // 3)
        if self.top >= max(0, len(self._rows) - height):
            self.top = None

    def find(self, words: str, *, older: bool = True) -> None:
        """The next line, older (or newer) than the last match, holding `words` in any case."""
        self._make_rows()
        wanted = words.casefold()
        lines = [fragments_text(line).casefold() for line in self.scrollback.lines]
        start = (len(lines) if older else -1) if self.found is None else self.found
        order: Iterable[int] = range(start - 1, -1, -1) if older else range(start + 1, len(lines))
        line = next((n for n in order if wanted in lines[n]), None)
        if line is None:
            self.said = f"“{words}” not found {'further back' if older else 'further on'}"
            return
        self.found, self.said = line, f"“{words}”"
        self._show_line(line)

    def _searched(self, buffer: Buffer) -> bool:
        self.searching = False
        self.app.layout.focus(self._lines)
        if buffer.text.strip():
            self.found = None
            self.find(buffer.text.strip())
        return True  # keep the words: `n` and `N` look for them again

    # --- keys -----------------------------------------------------------------------------

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()
        reading = ~has_focus(self.search)

        @keys.add("pageup", filter=reading)
        @keys.add("b", filter=reading)
        def _page_up(event: KeyPressEvent) -> None:
            self.scroll(-(self._size()[1] - 1))

        @keys.add("pagedown", filter=reading)
        @keys.add("space", filter=reading)
        def _page_down(event: KeyPressEvent) -> None:
            self.scroll(self._size()[1] - 1)

        @keys.add("up", filter=reading)
        @keys.add("k", filter=reading)
        def _up(event: KeyPressEvent) -> None:
            self.scroll(-1)

        @keys.add("down", filter=reading)
        @keys.add("j", filter=reading)
        def _down(event: KeyPressEvent) -> None:
            self.scroll(1)

        @keys.add("home", filter=reading)
        @keys.add("g", filter=reading)
        def _oldest(event: KeyPressEvent) -> None:
            self.top = 0

        @keys.add("end", filter=reading)
        @keys.add("G", filter=reading)
        def _newest(event: KeyPressEvent) -> None:
            self.top = None

        @keys.add("/", filter=reading)
        @keys.add("c-r", filter=reading)
        def _search(event: KeyPressEvent) -> None:
            self.searching = True
            self.search.reset()
            event.app.layout.focus(self.search)

        @keys.add("n", filter=reading)
        @keys.add("N", filter=reading)
        def _again(event: KeyPressEvent) -> None:
            words = self.search.text.strip()
            if words:
                self.find(words, older=event.data == "n")

        @keys.add("escape", filter=~reading, eager=True)
        def _cancel_search(event: KeyPressEvent) -> None:
            self.searching = False
            event.app.layout.focus(self._lines)

        @keys.add("q", filter=reading)
        @keys.add("escape", filter=reading, eager=True)
        @keys.add("c-c")
        def _leave(event: KeyPressEvent) -> None:
            event.app.exit()

        return keys


async def read_back(
    scrollback: Scrollback, style: BaseStyle | None = None, depth: ColorDepth | None = None
) -> None:
    """Show the scrollback view until the person leaves it (the caller suspends the chat), in
    the chat's `style` and colour `depth`.

    It opens a page back from the newest line, as PageUp scrolls in irssi and weechat: the
    newest page is what the chat screen showed already."""
    # An input of its own on the terminal: the chat's prompt, suspended, may still have a timer
    # to flush its input (a lone Escape) that would take keys typed in the view for itself.
    view = ScrollbackView(scrollback, create_input(), style, depth)
    view.scroll(-(view._size()[1] - 1))
    await view.app.run_async()
