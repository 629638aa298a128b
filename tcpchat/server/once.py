"""Exactly once (PROTOCOL.md, Rules): which member sent which `say` ids lately, and their acks.

A member is known by its lineage: a random number given to a connection when it joins, handed
down to a later connection that shows the token of an earlier one (the live one it takes the
name over from, or one that left).  Renames keep the lineage (it belongs to the connection, not
to the name), so an id is the same member's under its current or an earlier name, and a stranger
who takes a name that was free cannot make that name's ids their own.

A token carries its lineage, signed with the room's key (a keyed BLAKE2b MAC): nothing about
tokens is kept, and a server restarted on the same history file (which keeps the key, and
each `say`'s lineage and id with its message) still knows a token of its previous run and the
ids sent under it, so that a client resending after a restart is not delivered twice.

Memory is bounded: ids are forgotten after `WINDOW`, and the oldest first past `MAX_IDS`.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TypeVar

from tcpchat.protocol import Ack

WINDOW = timedelta(minutes=10)
MAX_IDS = 100_000  # a few hundred bytes each (see `remember`), some tens of megabytes

K = TypeVar("K")

_LINEAGE_BYTES = 8
_NONCE_BYTES = 16
_MAC_BYTES = 16
_TOKEN_BYTES = _LINEAGE_BYTES + _NONCE_BYTES + _MAC_BYTES


class SentIds:
    """The acks of accepted `say`s with an id, by lineage and id, for `WINDOW`; and the tokens
    that hand a lineage down."""

    def __init__(
        self, window: timedelta = WINDOW, max_ids: int = MAX_IDS, key: bytes | None = None
    ) -> None:
        """`key` signs tokens (a new random one when None: tokens then last as long as this
        object)."""
        self.window = window
        self.max_ids = max_ids
        self._key = secrets.token_bytes(32) if key is None else key
        # (ts, seq, delivered) of each ack, in the order they were accepted, so the oldest are
        # at the front; nothing expires before `_next_expiry` (the oldest's time + `window`;
        # None: look at the oldest on the next `remember`).
        self._acks: collections.OrderedDict[tuple[int, bytes], tuple[datetime, int, int]] = (
            collections.OrderedDict()
        )
        self._next_expiry: datetime | None = None

    @property
    def key(self) -> bytes:
        return self._key

    def use_key(self, key: bytes) -> None:
        """Sign and check tokens with `key` from now on (the cluster's, shared by its processes)."""
        self._key = key

    def new_lineage(self) -> int:
        """A lineage no other connection has had, in this run or an earlier one (62 random
        bits; 0 is the operator's)."""
        return secrets.randbits(62) + 1

    def token_for(self, lineage: int) -> str:
        """A new secret for a `welcome`: random, and signed to say which lineage it hands down."""
        body = lineage.to_bytes(_LINEAGE_BYTES, "big") + secrets.token_bytes(_NONCE_BYTES)
        return base64.urlsafe_b64encode(body + self._sign(body)).decode("ascii").rstrip("=")

    def inherit(self, token: str) -> int | None:
        """The lineage `token` hands down, or None for a token this room's key did not sign.

        A token may hand its lineage down more than once: a successor's `welcome` (with the new
        token) can be lost with its connection, and the client then shows the old token again;
        it is still the same member, whose ids must not be delivered twice."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):  # not base64, or not ASCII at all
            return None
        if len(raw) != _TOKEN_BYTES:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._sign(body)):
            return None
        return int.from_bytes(body[:_LINEAGE_BYTES], "big")

    def _sign(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, key=self._key, digest_size=_MAC_BYTES).digest()

    def ack_of(self, lineage: int, request: bytes, request_id: str, now: datetime) -> Ack | None:
        """The ack of the `say` this lineage sent with `request_id` (whose `request_key` is
        `request`) within `WINDOW`, or None."""
        found = self._acks.get((lineage, request))
        if found is None:
            return None
        ts, seq, delivered = found
        if ts < now - self.window:
            return None
        return Ack(id=request_id, seq=seq, ts=ts, delivered=delivered)

    def remember(
        self, lineage: int, request: bytes, seq: int, ts: datetime, delivered: int
    ) -> None:
        """Remember the ack of a `say` by its id's `request_key` (as a store keeps it), from its
        time `ts` on.

        An id may be any string, up to a line's length: only its digest is kept, and of the ack
        only what a resend's ack is made again from, in tuples of numbers, bytes and times (which
        the garbage collector stops tracking), so that every remembered say costs the same
        (about 300 bytes) and nothing to a collection."""
        acks = self._acks
        key_of = (lineage, request)
        acks[key_of] = (ts, seq, delivered)
        acks.move_to_end(key_of)  # one remembered before (and expired since) is new again
        if len(acks) > self.max_ids:
            acks.popitem(last=False)
        expiry = self._next_expiry
        if expiry is None or ts > expiry:
            oldest = _forget_old(acks, ts - self.window)
            self._next_expiry = None if oldest is None else oldest + self.window

    def forget(self, lineage: int, request_id: str) -> None:
        """The `say` sent with `request_id` was not kept after all (its store failed): a resend
        is a new message, not a duplicate."""
        self._acks.pop((lineage, request_key(request_id)), None)

    def __len__(self) -> int:
        return len(self._acks)


def _forget_old(
    entries: collections.OrderedDict[K, tuple[datetime, int, int]], before: datetime
) -> datetime | None:
    """Drop the entries from before `before`; the time of the oldest left (None when none is)."""
    while entries:
        key, (when, _, _) = next(iter(entries.items()))
        if when >= before:
            return when
        del entries[key]
    return None


def request_key(request_id: str) -> bytes:
    """A short key for an id of any length (16 bytes: no two ids of one member will share it)."""
    return hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
