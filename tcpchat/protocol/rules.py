"""What a name and a message's text may be (PROTOCOL.md, Rules): their length and characters,
the reserved name and the names that look like it, and the controls no text may hold.

Pure functions of strings that answer with a reason; what to do about it is the server's choice.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from tcpchat.protocol.confusables import skeleton
from tcpchat.protocol.events import ErrorCode

MAX_NAME_LENGTH = 32
# The sender of the operator's announcements and warnings; no member may take it.
RESERVED_NAME = "server"
RESERVED_NAMES = frozenset({RESERVED_NAME})
# Letters (category Lo) that draw nothing: a name made of them would look empty or like another.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
NAME_PUNCTUATION = frozenset("_-.")

_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def normalize_name(name: str) -> str:
    """The form in which a name is stored and shown: NFC, so composed and decomposed `é` agree."""
    return unicodedata.normalize("NFC", name.strip())


def fold_name(name: str) -> str:
    """The key under which names are unique: NFKC plus case folding (`Alice` = `ＡＬＩＣＥ`)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


_DROP_NAME_PUNCTUATION = str.maketrans(dict.fromkeys(NAME_PUNCTUATION))


@functools.lru_cache(maxsize=4096)  # a name is looked at when it joins, leaves and is renamed
def confusable_keys(name: str) -> frozenset[str]:
    """Keys that two names share when they look alike (UTS #39 skeletons), whatever their case.

    A name is one name in every case (`fold_name`), so each of its forms is looked at: as
    written, folded and in capitals.  `аlice` (Cyrillic а) looks like `alice` as written, `Тom`
    (Cyrillic Т) like `TOM`, `biII` (capital I) like `bill`.  The punctuation names may hold
    (`_-.`) is left out of the keys, and so are letters that look like it: `server.` or `al_ice`
    would pass for `server` or `alice` at the end of a sentence or in a hurry.
    """
    folded = fold_name(name)
    return frozenset(
        skeleton(form).translate(_DROP_NAME_PUNCTUATION) for form in (name, folded, folded.upper())
    )


@functools.cache
def _reserved_keys() -> frozenset[str]:
    return frozenset().union(*(confusable_keys(name) for name in RESERVED_NAMES))


def name_problem(name: str) -> str | None:
    """Why `name` (already normalised) is not a valid name, as a sentence; None when it is."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"A name must be 1 to {MAX_NAME_LENGTH} characters long."
    for char in name:
        if char in NAME_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if not (category.startswith("L") or category == "Nd") or char in INVISIBLE_LETTERS:
            return "A name may hold only letters, digits, '_', '-' and '.'."
    if fold_name(name) in RESERVED_NAMES:
        return f"The name {name!r} is reserved."
    if not confusable_keys(name).isdisjoint(_reserved_keys()):
        return f"The name {name!r} looks like {RESERVED_NAME!r}, which is reserved."
    return None


def is_forbidden_char(char: str) -> bool:
    """C0 controls but TAB and LF, DEL, C1 controls, surrogates, and the bidi override/isolate marks."""
    code = ord(char)
    if code < 0x20:
        return char not in "\t\n"
    # Lone surrogates (from a JSON escape like "\\ud800") are no characters and cannot be UTF-8.
    return 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or char in _BIDI_CONTROLS


# The same set as is_forbidden_char, searched in C: every message is checked, char by char in
# Python it was a tenth of the server's time per message.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_BIDI_CONTROLS)) + "]"
)


def text_problem(text: str, max_text: int) -> tuple[ErrorCode, str] | None:
    """Why `text` may not be sent as a message, as (code, sentence); None when it may."""
    if len(text) > max_text:
        return (
            ErrorCode.TEXT_TOO_LONG,
            f"message too long ({len(text)} > {max_text} characters)",
        )
    forbidden = _FORBIDDEN.search(text)
    if forbidden is not None:
        return (
            ErrorCode.BAD_TEXT,
            f"A message may not hold the control character U+{ord(forbidden.group()):04X}.",
        )
    if not text.strip():
        return ErrorCode.EMPTY_TEXT, "A message needs some text that is not only spaces."
    return None


def strip_unsafe(text: str) -> str:
    """Text with every forbidden character replaced by U+FFFD, for showing peer text on a terminal."""
    return "".join("\ufffd" if is_forbidden_char(c) else c for c in text)
