"""A room's names in the order the protocol lists them, each kept with its JSON text.

Every `welcome` lists every member, so a crowd joining costs the square of its size in names
written.  Kept here, each name is escaped for JSON once, when it arrives; a `welcome` or a
`members` then costs a join of ready strings (for 10,000 names about a fifth of encoding them).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from json.encoder import encode_basestring as _json_string  # C; non-ASCII kept as it is


class NameList(list[str]):
    """Names, and the same names as a JSON array (`json`), for an event's `names` field: the
    JSON encoder writes `json` instead of encoding the list again."""

    __slots__ = ("json",)

    def __init__(self, names: Iterable[str], json: str) -> None:
        super().__init__(names)
        self.json = json


class SortedNames:
    """Names in the order of their folded keys (each key given by the caller, once)."""

    __slots__ = ("_json", "_keys", "_names")

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._names: list[str] = []
        self._json: list[str] = []

    def add(self, key: str, name: str) -> None:
        at = bisect.bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._names.insert(at, name)
        self._json.insert(at, _json_string(name))

    def remove(self, key: str) -> None:
        at = bisect.bisect_left(self._keys, key)
        del self._keys[at], self._names[at], self._json[at]

    def snapshot(self) -> NameList:
        """The names now, as a list that stays as it is, with its JSON."""
        return NameList(self._names, "[" + ",".join(self._json) + "]")
