"""Where things go on the chat screen, beyond what a line says: how far a line's later rows are
indented, how rows are written, how many colours the terminal shows, and the names' colours
when it shows many.

No prompt_toolkit application and no state: functions of fragments, settings and environment.
"""

from __future__ import annotations

import colorsys
import functools
import os

from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.styles import BaseStyle, Style, merge_styles
from prompt_toolkit.utils import get_cwidth

# How every row of a printed line after its first begins, after the indent: marked (a narrow
# character, one column on every terminal) so that padding cannot pass for the indent.
CONTINUED = "¦ "
# The least indent: the mark never at column 0, where the screen's own lines begin.
LEAST_INDENT = 2 + len(CONTINUED)
# Name colours beyond `render.STYLE`'s 8: a name's class is its hash modulo this, and each
# class is a hue of its own (as many as a 24-bit terminal tells apart; a 256-colour one shows
# each as the nearest of its palette, still many more than 8).
HUES = 360

_DEPTHS = {
    "none": ColorDepth.DEPTH_1_BIT,
    "16": ColorDepth.DEPTH_4_BIT,
    "256": ColorDepth.DEPTH_8_BIT,
    "truecolor": ColorDepth.DEPTH_24_BIT,
}


def indent(fragments: list[tuple[str, str]], width: int) -> int:
    """How far the rows of a line after its first are indented: under its text (after the time
    and the name), or under what follows the time for a line without a text; never more than
    half the width (a long name), where it falls back to the time's width, then the least."""
    text_at = time_at = column = 0
    for style, text in fragments:
        classes = style.split()
        if "class:text" in classes:
            text_at = column
            break
        column += get_cwidth(text)
        if "class:time" in classes:
            time_at = column
    for candidate in (text_at, time_at):
        if LEAST_INDENT <= candidate <= width // 2:
            return candidate
    return LEAST_INDENT


def write_rows(
    output: Output, rows: list[list[tuple[str, str]]], style: BaseStyle, depth: ColorDepth | None
) -> None:
    """Write rows made to fit the width with the terminal's own wrapping off, as prompt_toolkit
    draws its layout: a character the terminal draws wider than wcwidth said cuts its row at
    the edge rather than pushing the rest to column 0 of a row of its own."""
    depth = depth or output.get_default_color_depth()
    output.reset_attributes()
    output.disable_autowrap()
    try:
        for row in rows:
            for look, text in row:
                output.set_attributes(style.get_attrs_for_style_str(look), depth)
                output.write(text)
            output.reset_attributes()
            output.write("\r\n")
    finally:
        output.enable_autowrap()
        output.flush()


def colour_depth(colours: str) -> ColorDepth | None:
    """The colour depth the `colours` setting asks for; None leaves it to prompt_toolkit (its
    `PROMPT_TOOLKIT_COLOR_DEPTH`, `NO_COLOR` and TERM), except that `COLORTERM`, which
    terminals set to say they show 24-bit colour, is taken at its word."""
    if colours in _DEPTHS:
        return _DEPTHS[colours]
    from_env = ColorDepth.from_env()
    if from_env is None and os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return ColorDepth.DEPTH_24_BIT
    return from_env


@functools.cache
def screen_style(base: BaseStyle, depth: ColorDepth) -> BaseStyle:
    """`base` with the names' hues for a terminal of `depth` (one object for each: prompt_toolkit
    recomputes its styles when the style object changes)."""
    return merge_styles([base, name_colours(depth)])


@functools.cache
def name_colours(depth: ColorDepth) -> Style:
    """The hue classes of names (`class:name.hN`) for a terminal of `depth`: none below 256
    colours, where `render.STYLE`'s 8 stay apart as they would not if mapped to 16."""
    if depth in (ColorDepth.DEPTH_1_BIT, ColorDepth.DEPTH_4_BIT):
        return Style([])
    return Style([(f"name.h{hue}", _hue(hue)) for hue in range(HUES)])


def _hue(degrees: int) -> str:
    """A colour of this hue, light and saturated enough to read on a dark or a light ground."""
    red, green, blue = colorsys.hls_to_rgb(degrees / HUES, 0.62, 0.7)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * part) for part in (red, green, blue)))
