"""Where a room lives in Redis: every key of a room carries the room's name in braces, Redis
Cluster's hash tag, so that one room's keys share a slot and rooms can later be spread over
several Redis instances (sharding by room) without changing the scripts."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "tcpchat"
# Processes and their leases: one sorted set for the whole cluster (member: process id, score:
# when its lease ends, in milliseconds).
LEASES = f"{PREFIX}:leases"
# The operator's acts that every process carries out (a stream): kicks, bans, unbans.
CONTROL = f"{PREFIX}:control"
# The key that signs every process's tokens (see `tcpchat.server.once`), made by the first.
TOKEN_KEY = f"{PREFIX}:token-key"


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """The keys of one room."""

    room: str

    def _key(self, part: str) -> str:
        return f"{PREFIX}:{{{self.room}}}:{part}"

    @property
    def seq(self) -> str:
        """The last `seq` given out (INCR): never lowered, so no number is given twice."""
        return self._key("seq")

    @property
    def events(self) -> str:
        """Everything every process must deliver in one order: messages, joins, leaves,
        renames, and private messages until their recipient's process delivered them (a
        stream, trimmed: it is for live delivery and a short catch-up)."""
        return self._key("events")

    @property
    def history(self) -> str:
        """The room's messages, each under the stream id `0-SEQ`: a resume and a history page
        are range reads by `seq` (a stream, trimmed to the retention limit)."""
        return self._key("history")

    @property
    def names(self) -> str:
        """Who holds which name: folded name -> `PROCESS CONNECTION NAME` (a hash)."""
        return self._key("names")

    @property
    def looks(self) -> str:
        """Every held name's look-alike keys (`confusable_keys`) -> its folded form (a hash)."""
        return self._key("looks")

    @property
    def claims(self) -> str:
        """Folded name -> JSON `{"t": its connection's token digest, "l": its look-alike keys}`
        (a hash): what a takeover checks, and what freeing the name removes."""
        return self._key("claims")

    def ids(self, lineage: int) -> str:
        """The ids a member lineage sent lately: id digest -> `SEQ TS DELIVERED` (a hash that
        expires), so that a resend to any process is answered, not delivered twice."""
        return self._key(f"ids:{lineage}")

    def owned_by(self, process: str) -> str:
        """The folded names a process's members hold (a set), to free them if it dies."""
        return self._key(f"owned:{process}")
