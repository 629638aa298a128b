"""A chat room: members, names, `seq` and history, and who gets which event.

Pure logic with no I/O and no clock of its own: every call gets the time from its caller and
returns `Delivery` values; the server turns those into bytes and writes them.  Members are opaque
handles (the server's connection objects) so this module never sees a socket.  Messages, their
`seq` and the recent history are kept by a `MessageLog`: `MemoryLog` here, and a durable store
can take its place without the room changing.
"""

from __future__ import annotations

import hmac
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tcpchat.protocol import (
    PROTOCOL_VERSION,
    RESERVED_NAME,
    Ack,
    Dm,
    Error,
    ErrorCode,
    Hello,
    HistoryPage,
    HistoryRequest,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Nick,
    Private,
    Renamed,
    Results,
    Say,
    SearchRequest,
    ServerEvent,
    Welcome,
    confusable_keys,
    fold_name,
    name_problem,
    normalize_name,
    text_problem,
)
from tcpchat.protocol.names import SortedNames
from tcpchat.protocol.quick import quick_init
from tcpchat.server.messages import (
    RESUME_LIMIT,
    LogUnavailable,
    MemoryLog,
    MessageLog,
    SentBy,
)
from tcpchat.server.once import SentIds, request_key
from tcpchat.words import counted

Handle = Hashable
PASSWORD_NEEDED = "This server needs a password."
# `history` and `search` pages: the size when not asked for, and the most (PROTOCOL.md).
HISTORY_PAGE, HISTORY_PAGE_MAX = 50, 500
SEARCH_PAGE, SEARCH_PAGE_MAX = 20, 200


@quick_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """One event and the members it goes to (encoded once, whatever their number).

    `everyone` says that `to` is every member but `exclude` (if any) at this moment: the
    server can then send it without going through the list member by member.
    """

    event: ServerEvent
    to: Sequence[Handle]
    everyone: bool = False
    exclude: Handle | None = None


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """The room's rules that the server operator sets."""

    server_name: str
    max_text: int
    history: int
    max_members: int | None = None
    motd: str | None = None
    password: str | None = None


class Room:
    """Members by handle, by folded name and by look; its messages in a `MessageLog`."""

    def __init__(self, limits: RoomLimits, log: MessageLog | None = None) -> None:
        self.limits = limits
        # Messages and `seq`: in memory unless a store is given.
        self.log: MessageLog = MemoryLog(limits.history) if log is None else log
        self._names: dict[Handle, str] = {}
        self._by_key: dict[str, Handle] = {}
        # Members by each of their names' confusable keys: no two members share one.
        self._by_look: dict[str, Handle] = {}
        # Folded keys in order, and the names in the same order: every welcome lists every
        # name, so the order is kept up to date instead of sorted again for each joiner.
        self._in_order = SortedNames()
        # Each member's secret for taking its name back (new with each welcome), and the
        # lineage its `say` ids are remembered under (see `tcpchat.server.once`).
        self._tokens: dict[Handle, str] = {}
        self._lineages: dict[Handle, int] = {}
        self.sent = SentIds(key=self.log.token_key)
        self._restore_ids()

    def _restore_ids(self) -> None:
        """Remember the ids that an earlier run of the server accepted lately (its store keeps
        them), so that a client resending after a restart is not delivered twice."""
        try:
            sent = self.log.sent_lately()
        except LogUnavailable:  # the store cannot be read now: its writes will say so
            return
        for sent_by, message in sent:
            self.sent.remember(
                sent_by.lineage, sent_by.request, message.seq, message.ts, sent_by.delivered
            )

    # --- queries -------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The `seq` of the last message (0 before the first)."""
        return self.log.seq

    @property
    def count(self) -> int:
        return len(self._names)

    def is_member(self, handle: Handle) -> bool:
        return handle in self._names

    def name_of(self, handle: Handle) -> str | None:
        return self._names.get(handle)

    def handle_named(self, name: str) -> Handle | None:
        """The member called `name` (any case or width), or None."""
        return self._by_key.get(fold_name(normalize_name(name)))

    def sorted_names(self) -> list[str]:
        """Names in folded order (the folded keys are kept, so no name is folded again here),
        with their JSON written (see `tcpchat.protocol.names`)."""
        return self._in_order.snapshot()

    def handles(self) -> list[Handle]:
        return list(self._names)

    def name_error(self, name: str, *, renaming: Handle | None = None) -> Error | None:
        """Why `name` cannot be taken now (`bad_name` or `name_taken`), or None."""
        problem = name_problem(name)
        if problem:
            return Error(ErrorCode.BAD_NAME, problem)
        holder = self._by_key.get(fold_name(name))
        if holder is not None and holder != renaming:
            return name_taken(name)
        for key in confusable_keys(name):
            twin = self._by_look.get(key)
            if twin is not None and twin != renaming:
                return looks_taken(name, self._names[twin])
        return None

    def replaced_by(
        self, handle: Handle, hello: Hello, *, password_checked: bool = False
    ) -> Handle | None:
        """The member whose name `hello` from `handle` takes back with its token, or None.

        Only a `hello` that would otherwise be let in (not from a member, right version and
        password) takes a name over; a wrong token is left to `join`, which finds it taken.
        """
        if hello.token is None or handle in self._names or hello.version != PROTOCOL_VERSION:
            return None
        if not password_checked and not self.password_matches(hello.password):
            return None
        holder = self._by_key.get(fold_name(normalize_name(hello.name)))
        if holder is None or not _same_secret(self._tokens[holder], hello.token):
            return None
        return holder

    def password_matches(self, password: str | None) -> bool:
        expected = self.limits.password
        if expected is None:
            return True
        if password is None:
            return False
        # surrogatepass: a password is compared, never refused for being odd Unicode.
        given = password.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass"))

    # --- changes -------------------------------------------------------------------------------

    def join(
        self, handle: Handle, hello: Hello, now: datetime, *, password_checked: bool = False
    ) -> list[Delivery]:
        """`hello`: `welcome` to the joiner and `joined` to the rest, or one `error` to it.

        The password is checked before the name, so that a stranger learns nothing about who
        is here; `password_checked` says an earlier `hello` on this connection gave the right one.
        """
        refused = self.join_refusal(handle, hello, password_checked=password_checked)
        if refused is not None:
            return refused
        name = normalize_name(hello.name)
        try:
            if hello.since is None:
                history, complete = self.log.recent(), True
            else:
                history, complete = self.log.since(max(0, hello.since), RESUME_LIMIT)
        except LogUnavailable:
            return [unavailable(handle)]
        return self.admit(handle, hello, name, now, history=history, complete=complete)

    def join_refusal(
        self,
        handle: Handle,
        hello: Hello,
        *,
        password_checked: bool = False,
        replacing: Handle | None = None,
    ) -> list[Delivery] | None:
        """The `error` that `hello` gets (already joined, version, password, full, name), or
        None: it may join (in the place of `replacing`, whose name its token takes back)."""
        if handle in self._names:
            return [_error_to(handle, ErrorCode.ALREADY_JOINED, "You have already joined.")]
        if hello.version != PROTOCOL_VERSION:
            return [
                _error_to(
                    handle,
                    ErrorCode.VERSION_UNSUPPORTED,
                    f"This server speaks protocol version {PROTOCOL_VERSION}, not {hello.version}.",
                )
            ]
        if not password_checked and not self.password_matches(hello.password):
            if hello.password is None:
                return [_error_to(handle, ErrorCode.AUTH_FAILED, PASSWORD_NEEDED)]
            return [_error_to(handle, ErrorCode.AUTH_FAILED, "Wrong password.")]
        limit = self.limits.max_members
        if limit is not None and self.count >= limit and replacing is None:
            return [
                _error_to(
                    handle,
                    ErrorCode.SERVER_FULL,
                    f"The server is full ({counted(limit, 'member')}); try later.",
                )
            ]
        error = self.name_error(normalize_name(hello.name), renaming=replacing)
        if error:
            return [Delivery(error, (handle,))]
        return None

    def admit(
        self,
        handle: Handle,
        hello: Hello,
        name: str,
        now: datetime,
        *,
        history: list[Message],
        complete: bool,
        seq: int | None = None,
        lineage: int | None = None,
        token: str | None = None,
    ) -> list[Delivery]:
        """Make `handle` the member `name` (its `hello` was let in): `welcome` to it with
        `history` (and the room's newest `seq`, or `seq` where another keeps the room's order)
        and `joined` to the rest.  Where another keeps the names, the member's `lineage` and
        `token` were chosen before its claim (`lineage_and_token`)."""
        others = list(self._names)
        self._names[handle] = name
        key = fold_name(name)
        self._by_key[key] = handle
        self._by_look.update(dict.fromkeys(confusable_keys(name), handle))
        self._in_order.add(key, name)
        if lineage is None or token is None:
            lineage, token = self.lineage_and_token(hello)
        self._lineages[handle] = lineage
        self._tokens[handle] = token
        welcome = Welcome(
            name=name,
            members=self.count,
            names=self.sorted_names(),
            server=self.limits.server_name,
            motd=self.limits.motd,
            max_text=self.limits.max_text,
            version=PROTOCOL_VERSION,
            history=history,
            seq=self.log.durable_seq if seq is None else seq,
            token=token,
            gap=not complete,
        )
        return [
            Delivery(welcome, (handle,)),
            Delivery(Joined(name=name, members=self.count, ts=now), others, True, handle),
        ]

    def lineage_and_token(self, hello: Hello) -> tuple[int, str]:
        """The lineage a joiner's ids go on under (its token's, or a new one) and its new token."""
        inherited = None if hello.token is None else self.sent.inherit(hello.token)
        lineage = self.sent.new_lineage() if inherited is None else inherited
        return lineage, self.sent.token_for(lineage)

    def token_of(self, handle: Handle) -> str:
        """The secret of a member's connection (its `welcome`'s `token`)."""
        return self._tokens[handle]

    def lineage_of(self, handle: Handle) -> int:
        """The lineage a member's `say` ids are remembered under (see `tcpchat.server.once`)."""
        return self._lineages[handle]

    def say(self, handle: Handle, say: Say, now: datetime) -> list[Delivery]:
        """`say`: the next `seq`; `message` to every other member and `ack` to the sender."""
        sender = self._names[handle]
        request = None if say.id is None else request_key(say.id)
        refused = self.say_refusal(handle, say, now, request)
        if refused is not None:
            return refused
        others = list(self._names)  # copied and searched in C: this runs for every message
        others.remove(handle)
        delivered = len(others)
        sent_by = None if request is None else SentBy(self._lineages[handle], request, delivered)
        try:
            message = self.log.append(sender, say.text, now, me=say.me, sent_by=sent_by)
        except LogUnavailable:
            return [unavailable(handle, say.id)]
        if sent_by is not None:
            self.sent.remember(sent_by.lineage, sent_by.request, message.seq, now, delivered)
        ack = Ack(id=say.id, seq=message.seq, ts=now, delivered=delivered)
        return [Delivery(message, others, True, handle), Delivery(ack, (handle,))]

    def say_refusal(
        self, handle: Handle, say: Say, now: datetime, request: bytes | None = None
    ) -> list[Delivery] | None:
        """What a `say` gets instead of a new message: the `ack` of an id this member sent
        before, or the `error` of a text that cannot be sent; None: it is a new message.
        `request` is the id's `request_key` where the caller has it already."""
        if say.id is not None:
            request = request_key(say.id) if request is None else request
            acked = self.sent.ack_of(self._lineages[handle], request, say.id, now)
            if acked is not None:  # sent before, maybe under another name: not again
                return [Delivery(acked, (handle,))]
        problem = text_problem(say.text, self.limits.max_text)
        if problem:
            return [_error_to(handle, *problem, request_id=say.id)]
        return None

    def announce(self, text: str, now: datetime) -> list[Delivery]:
        """A message from the server's operator: sender `server` (a name no member can take),
        the next `seq` like any message, to every member."""
        message = self.log.append(RESERVED_NAME, text, now)
        return [Delivery(message, list(self._names), True)]

    def notify(self, handle: Handle, text: str, now: datetime) -> list[Delivery]:
        """A private word from the server to one member (an idle warning, say)."""
        private = Private(sender=RESERVED_NAME, to=self._names[handle], text=text, ts=now)
        return [Delivery(private, (handle,))]

    def dm(self, handle: Handle, dm: Dm, now: datetime) -> list[Delivery]:
        """`dm`: `private` to the one named and `ack` (delivered 1) to the sender."""
        sender = self._names[handle]
        refused = self.dm_refusal(handle, dm)
        if refused is not None:
            return refused
        target = self._by_key.get(fold_name(normalize_name(dm.to)))
        if target is None:
            return [nobody_called(handle, dm)]
        private = Private(sender=sender, to=self._names[target], text=dm.text, ts=now)
        ack = Ack(id=dm.id, seq=None, ts=now, delivered=1)
        return [Delivery(private, (target,)), Delivery(ack, (handle,))]

    def dm_refusal(self, handle: Handle, dm: Dm) -> list[Delivery] | None:
        """The `error` for a private message's text, or None: it may be sent."""
        problem = text_problem(dm.text, self.limits.max_text)
        return None if not problem else [_error_to(handle, *problem, request_id=dm.id)]

    def nick(self, handle: Handle, nick: Nick, now: datetime) -> list[Delivery]:
        """`nick`: `renamed` to everyone, the sender included; a change of case is allowed."""
        new = normalize_name(nick.name)
        error = self.name_error(new, renaming=handle)
        if error:
            return [Delivery(error, (handle,))]
        return [Delivery(self.rename(handle, new, now), list(self._names), True)]

    def rename(self, handle: Handle, new: str, now: datetime) -> Renamed:
        """Give a member the name `new` (free, checked by the caller); the `renamed` to send."""
        old = self._names[handle]
        old_key, new_key = fold_name(old), fold_name(new)
        del self._by_key[old_key]
        for look in confusable_keys(old):
            del self._by_look[look]
        self._in_order.remove(old_key)
        self._names[handle] = new
        self._by_key[new_key] = handle
        self._by_look.update(dict.fromkeys(confusable_keys(new), handle))
        self._in_order.add(new_key, new)
        return Renamed(old=old, new=new, ts=now)

    def history(self, handle: Handle, request: HistoryRequest) -> list[Delivery]:
        """`history`: a page of the messages before `request.before`, oldest first."""
        limit = clamp_limit(request.limit, HISTORY_PAGE, HISTORY_PAGE_MAX)
        try:
            messages, more = self.log.before(request.before, limit)
        except LogUnavailable:
            return [unavailable(handle, request.id)]
        return [Delivery(HistoryPage(messages=messages, more=more, id=request.id), (handle,))]

    async def search(self, handle: Handle, request: SearchRequest) -> list[Delivery]:
        """`search`: the newest messages that hold every word of `request.text`, newest first."""
        limit = clamp_limit(request.limit, SEARCH_PAGE, SEARCH_PAGE_MAX)
        try:
            messages = await self.log.search(request.text, limit)
        except LogUnavailable:
            return [unavailable(handle, request.id)]
        return [Delivery(Results(messages=messages, id=request.id), (handle,))]

    def who(self, handle: Handle) -> list[Delivery]:
        return [Delivery(Members(names=self.sorted_names(), members=self.count), (handle,))]

    def leave(self, handle: Handle, reason: LeaveReason, now: datetime) -> list[Delivery]:
        """A member goes: `left` to the rest, with the count after the change. No-op for strangers."""
        name = self._names.pop(handle, None)
        if name is None:
            return []
        del self._tokens[handle], self._lineages[handle]
        key = fold_name(name)
        del self._by_key[key]
        for look in confusable_keys(name):
            del self._by_look[look]
        self._in_order.remove(key)
        left = Left(name=name, members=self.count, reason=reason, ts=now)
        return [Delivery(left, list(self._names), True)]


def name_taken(name: str) -> Error:
    """The `error` for a name somebody holds (here, or in a cluster, on another process)."""
    return Error(ErrorCode.NAME_TAKEN, f"The name {name!r} is taken; choose another.")


def looks_taken(name: str, twin: str) -> Error:
    """The `error` for a name that looks like `twin`, a member's."""
    return Error(
        ErrorCode.NAME_TAKEN, f"The name {name!r} looks like {twin!r}, who is here; choose another."
    )


def nobody_called(handle: Handle, dm: Dm) -> Delivery:
    """The `error` for a private message to a name nobody holds."""
    return _error_to(
        handle, ErrorCode.NO_SUCH_MEMBER, f"Nobody called {dm.to!r} is here.", request_id=dm.id
    )


def clamp_limit(limit: int | None, default: int, most: int) -> int:
    """A request's `limit`: the default when not given, else between 1 and `most`."""
    return default if limit is None else min(max(1, limit), most)


def _same_secret(expected: str, given: str) -> bool:
    # surrogatepass: a token is compared, never refused for being odd Unicode.
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def unavailable(handle: Handle, request_id: str | None = None) -> Delivery:
    return _error_to(
        handle,
        ErrorCode.UNAVAILABLE,
        "The server cannot keep messages right now; nothing was sent. Try again soon.",
        request_id,
    )


def _error_to(
    handle: Handle, code: ErrorCode, message: str, request_id: str | None = None
) -> Delivery:
    return Delivery(Error(code=code, message=message, id=request_id), (handle,))
