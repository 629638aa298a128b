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
import dataclasses
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TypeVar

from tcpchat.protocol import Ack

WINDOW = timedelta(minutes=10)
MAX_IDS = 100_000  # a few hundred bytes each (see `remember`), some tens of megabytes

K = TypeVar("K")
V = TypeVar("V")

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
        # In the order they were accepted, so the oldest are at the front.
        self._acks: collections.OrderedDict[tuple[int, bytes], tuple[datetime, Ack]] = (
            collections.OrderedDict()
        )

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

    def ack_of(self, lineage: int, request_id: str, now: datetime) -> Ack | None:
        """The ack of the `say` this lineage sent with `request_id` within `WINDOW`, or None."""
        found = self._acks.get((lineage, request_key(request_id)))
        if found is None or found[0] < now - self.window:
            return None
        return dataclasses.replace(found[1], id=request_id)

    def remember(self, lineage: int, request_id: str, ack: Ack, now: datetime) -> None:
        self.restore(lineage, request_key(request_id), ack, now)

    def restore(self, lineage: int, key: bytes, ack: Ack, when: datetime) -> None:
        """Remember an ack by its id's `request_key` (as a store keeps it).

        An id may be any string, up to a line's length: only its digest is kept, and the ack
        without it, so that every remembered say costs the same few hundred bytes."""
        key_of = (lineage, key)
        self._acks[key_of] = (when, dataclasses.replace(ack, id=None))
        self._acks.move_to_end(key_of)
        _forget_old(self._acks, when - self.window, self.max_ids)

    def forget(self, lineage: int, request_id: str) -> None:
        """The `say` sent with `request_id` was not kept after all (its store failed): a resend
        is a new message, not a duplicate."""
        self._acks.pop((lineage, request_key(request_id)), None)

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


def request_key(request_id: str) -> bytes:
    """A short key for an id of any length (16 bytes: no two ids of one member will share it)."""
    return hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
