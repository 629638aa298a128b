"""Unicode's confusable skeleton (UTS #39, section 4), for telling names that look alike.

Two strings are confusable when their skeletons are equal: `ѕеrvеr` (Cyrillic ѕ and е) and
`server`, or `ꜱerver` and `server`.  The table is `confusables.tsv`, generated from Unicode's own
confusables.txt by tcpchat/protocol/generate_confusables.py (its header names the Unicode version).  It is
read on the first call, never at import, so that commands that check no name do not pay for it.
Standard library only, like the name rules (`rules`) that use it.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources


@functools.cache
def prototypes() -> dict[int, str]:
    """Each confusable character's prototype, as a `str.translate` table."""
    text = (
        resources.files("tcpchat.protocol").joinpath("confusables.tsv").read_text(encoding="utf-8")
    )
    table: dict[int, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        source, target = line.split("\t")
        table[int(source, 16)] = "".join(chr(int(point, 16)) for point in target.split())
    return table


def skeleton(text: str) -> str:
    """UTS #39's skeleton: NFD, each character to its prototype, NFD again."""
    mapped = unicodedata.normalize("NFD", text).translate(prototypes())
    return unicodedata.normalize("NFD", mapped)
