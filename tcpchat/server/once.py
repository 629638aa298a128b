"""Exactly once (PROTOCOL.md, Rules): which member sent which `say` ids lately, and their acks.

A member is known by its lineage: a number given to a connection when it joins, handed down to a
later connection that shows the token of an earlier one (the live one it takes the name over from,
or one that left less than `WINDOW` ago).  Renames keep the lineage (it belongs to the connection,
not to the name), so an id is the same member's under its current or an earlier name, and a
stranger who takes a name that was free cannot make that name's ids their own.

Memory is bounded: ids and tokens are forgotten after `WINDOW`, and the oldest first past
`MAX_IDS` and `MAX_TOKENS`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
from datetime import datetime, timedelta
from typing import TypeVar

from tcpchat.protocol import Ack

WINDOW = timedelta(minutes=10)
MAX_IDS = 100_000  # a few hundred bytes each (see `remember`), some tens of megabytes
MAX_TOKENS = 10_000  # tokens of connections that left, kept for a reconnect within WINDOW

K = TypeVar("K")
V = TypeVar("V")


class SentIds:
    """The acks of accepted `say`s with an id, by lineage and id, for `WINDOW`."""

    def __init__(self, window: timedelta = WINDOW, max_ids: int = MAX_IDS) -> None:
        self.window = window
        self.max_ids = max_ids
        self._lineages = itertools.count(1)
        # In the order they were accepted, so the oldest are at the front.
        self._acks: collections.OrderedDict[tuple[int, bytes], tuple[datetime, Ack]] = (
            collections.OrderedDict()
        )
        # Tokens of connections that left: who may inherit their lineage, until when.
        self._retired: collections.OrderedDict[str, tuple[datetime, int]] = (
            collections.OrderedDict()
        )

    def new_lineage(self) -> int:
        return next(self._lineages)

    def retire(self, token: str, lineage: int, now: datetime) -> None:
        """A connection left: a new one that shows `token` within `WINDOW` is the same member."""
        self._retired[token] = (now, lineage)
        self._retired.move_to_end(token)
        _forget_old(self._retired, now - self.window, MAX_TOKENS)

    def inherit(self, token: str, now: datetime) -> int | None:
        """The lineage of the connection that left with `token` (within `WINDOW`), or None.

        A token may hand its lineage down more than once: a successor's `welcome` (with the new
        token) can be lost with its connection, and the client then shows the old token again;
        it is still the same member, whose ids must not be delivered twice."""
        _forget_old(self._retired, now - self.window, MAX_TOKENS)
        found = self._retired.get(token)
        return None if found is None else found[1]

    def ack_of(self, lineage: int, request_id: str, now: datetime) -> Ack | None:
        """The ack of the `say` this lineage sent with `request_id` within `WINDOW`, or None."""
        found = self._acks.get((lineage, _digest(request_id)))
        if found is None or found[0] < now - self.window:
            return None
        return dataclasses.replace(found[1], id=request_id)

    def remember(self, lineage: int, request_id: str, ack: Ack, now: datetime) -> None:
        # An id may be any string, up to a line's length: only its digest is kept, and the
        # ack without it, so that every remembered say costs the same few hundred bytes.
        key = (lineage, _digest(request_id))
        self._acks[key] = (now, dataclasses.replace(ack, id=None))
        self._acks.move_to_end(key)
        _forget_old(self._acks, now - self.window, self.max_ids)

    def forget(self, lineage: int, request_id: str) -> None:
        """The `say` sent with `request_id` was not kept after all (its store failed): a resend
        is a new message, not a duplicate."""
        self._acks.pop((lineage, _digest(request_id)), None)

    def __len__(self) -> int:
        return len(self._acks)


def _forget_old(
    entries: collections.OrderedDict[K, tuple[datetime, V]], before: datetime, most: int
) -> None:
    """Drop the entries from before `before`, and the oldest past `most`."""
    while entries:
        key, (when, _) = next(iter(entries.items()))
        if when >= before and len(entries) <= most:
            return
        del entries[key]


def _digest(request_id: str) -> bytes:
    """A short key for an id of any length (16 bytes: no two ids of one member will share it)."""
    return hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
