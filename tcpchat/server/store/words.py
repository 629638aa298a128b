"""How `search` splits text into words, the same way with SQLite's FTS5 index and without it.

PROTOCOL.md's `results`: a message matches when it holds every word of the query as a whole
word, case-insensitively.  A word is a run of letters, digits, combining marks and private-use
characters (Unicode categories L*, N* and Co) with the combining marks (Mn) that follow, which is what FTS5's `unicode61` tokenizer
keeps with diacritics left in place (`remove_diacritics 0`, so `café` never matches `cafe`).
The fallback matcher here splits and folds the same way, so both paths give the same
results for every character of Unicode 6.1 (SQLite's tables) but U+0130 (İ); characters added to
Unicode since may split differently.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator

# The FTS5 table's tokenizer: the words above, case folded, diacritics kept.
FTS_TOKENIZER = "unicode61 remove_diacritics 0"


@functools.lru_cache(maxsize=4096)
def _kind(char: str) -> int:
    """2: starts or continues a word; 1: only continues one (a combining mark); 0: neither."""
    category = unicodedata.category(char)
    if category[0] in "LN" or category == "Co":
        return 2
    return 1 if category == "Mn" else 0


def fold(text: str) -> str:
    """Lower case, with the final sigma as any sigma (FTS5 folds `ς` to `σ`, and Python's
    lower() makes `Σ` one or the other by what follows it)."""
    return text.lower().replace("ς", "σ")


def words(text: str) -> Iterator[str]:
    """The words of `text`, folded, in order (repeats included)."""
    start: int | None = None
    for at, char in enumerate(text):
        kind = _kind(char)
        if start is None:
            if kind == 2:
                start = at
        elif kind == 0:
            yield fold(text[start:at])
            start = None
    if start is not None:
        yield fold(text[start:])


def query_words(text: str) -> list[str]:
    """The distinct words to look for, in the order given (none: nothing can match)."""
    return list(dict.fromkeys(words(text)))


def fts_query(wanted: list[str]) -> str:
    """An FTS5 MATCH expression that needs every word: each one quoted, so that no word is read
    as an operator (`AND`, `NEAR`) or a column filter."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in wanted)


def has_words(text: str, wanted: str) -> bool:
    """Whether `text` holds every word of `wanted` (words joined by spaces): the fallback's test,
    registered as an SQL function where FTS5 is missing.

    Every word is first looked for as a substring of the folded text, which is ten times
    faster than splitting it, and sound: a word of the text, folded, is part of it folded."""
    needed = wanted.split(" ")
    folded = fold(text)
    if not all(word in folded for word in needed):
        return False
    return set(needed) <= set(words(text))
