"""One person's chat session as data: who is here, what they typed and the server has not yet
confirmed, whether the link is up, and what each server event changes and shows.

No socket, no terminal and no event loop: every method changes the state and returns what the
screen should do about it (lines to show, a bell, messages to send).  The screen
(`tcpchat.client.ui.screen`) owns the prompt and the connection and acts on those answers, so
the rules of a session can be tested by feeding it events.  Time comes from `clock`, so the
patience of a message can be tested without waiting for it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpchat.client.settings import Settings
from tcpchat.client.ui.look import Look
from tcpchat.client.ui.noise import Noise
from tcpchat.client.ui.render import (
    Bar,
    Fragments,
    mentions,
    render_notice,
    render_pending,
    render_problem,
)
from tcpchat.protocol import (
    Ack,
    Banner,
    Dm,
    Error,
    ErrorCode,
    HistoryPage,
    HistoryRequest,
    Invalid,
    Joined,
    LeaveReason,
    Left,
    Members,
    Message,
    Private,
    Renamed,
    Results,
    Say,
    SearchRequest,
    Shutdown,
    Welcome,
    fold_name,
    name_problem,
    normalize_name,
    strip_unsafe,
    text_problem,
)
from tcpchat.words import counted, members_online

# In seconds, as every duration here (the clock's unit).
ACK_PATIENCE = 10.0  # after this an unconfirmed message says so
DM_WAIT = 30.0  # how long a private message typed offline waits for its recipient
SPEAKERS_KEPT = 20  # recent speakers remembered for completion
# How long after a message was first sent a resend with its id is still known to the server:
# it remembers ids and tokens for 10 minutes (PROTOCOL.md, Exactly once); less a margin for
# the time the message took to get there.
SERVER_REMEMBERS = 9 * 60.0

Clock = Callable[[], float]
IN_DOUBT = "not confirmed before the connection was lost; it may not have arrived"


@dataclass
class PendingMessage:
    """A message the person typed, until the server confirms or refuses it."""

    id: str
    text: str
    to: str | None
    typed_at: float
    me: bool = False  # an action: `/me waves`
    sent: bool = False
    first_sent: float | None = None  # when first handed to a connection
    sent_as: str = ""  # our name then: how the room's history shows it
    # Sent, but the connection broke before its ack: resent with the same id after a rejoin
    # the server can tell it from a new message in (else it may or may not have arrived).
    unsure: bool = False
    resent_at: float | None = None  # sent again after a reconnect (typed while offline)
    waiting_for: str | None = None  # a private message waiting for this (folded) name to rejoin

    def event(self) -> Say | Dm:
        """What goes on the wire for it: `dm` to its recipient, else `say`."""
        if self.to:
            return Dm(to=self.to, text=self.text, id=self.id)
        return Say(text=self.text, id=self.id, me=self.me)


@dataclass
class Outcome:
    """What the screen does after a change of state: show `lines`, ring the bell, send `send`;
    `heard`: the message that came, if one did (the screen may be watched for it)."""

    lines: list[Fragments] = field(default_factory=list)
    bell: bool = False
    send: list[PendingMessage] = field(default_factory=list)
    heard: Message | Private | None = None


class ChatState:
    """The session: the room as last heard, the person's name, unconfirmed messages, the link."""

    def __init__(
        self, welcome: Welcome, *, clock: Clock = time.monotonic, settings: Settings | None = None
    ) -> None:
        self.clock = clock
        self.settings = settings or Settings()
        self.look = Look(self.settings)  # the lines in the chosen time format, with day lines
        self.noise = Noise(self.settings, clock)
        self.name = welcome.name
        self.server = welcome.server
        self.max_text = welcome.max_text
        self.members = welcome.members
        self.names: set[str] = set(welcome.names)
        self.speakers: list[str] = []  # most recent first
        self.last_seq = welcome.seq  # the newest message heard of: a rejoin resumes after it
        self.token = welcome.token  # the latest welcome's: a rejoin takes the name back with it
        self.status = "online"
        self.status_detail = ""  # while offline: when the next try is
        self.status_problem = ""  # while offline: why the last try failed
        # Why the chat ended without the person leaving (kicked, banned, idle too long, a password
        # no longer taken): then the screen does not reconnect, and ends with this sentence.
        self.removed: str | None = None
        self.pending: dict[str, PendingMessage] = {}
        self._ids = (str(n) for n in itertools.count(1))
        # The oldest message shown, where /history goes on from (None: none shown yet).
        self.oldest_seq: int | None = None
        self._request_ids = (f"q{n}" for n in itertools.count(1))
        self._searches: dict[str, str] = {}  # a search's id: the words it looks for

    # --- what to show ----------------------------------------------------------------------

    def names_by_recency(self) -> list[str]:
        """Members who spoke lately, most recent first, then the others by name."""
        recent_first = [name for name in self.speakers if name in self.names]
        return recent_first + sorted(self.names - set(recent_first), key=fold_name)

    def prompt(self) -> Fragments:
        """Unconfirmed messages with how each is doing, then the prompt itself."""
        lines: Fragments = []
        now = self.clock()
        for item in self.pending.values():
            if item.waiting_for:
                state = f"waiting for {strip_unsafe(item.to or '')} to come back"
            elif item.unsure:
                state = "not confirmed; sent again once back"
            elif not item.sent:
                state = "waiting for the connection"
            elif now - item.typed_at < ACK_PATIENCE:
                state = "sending"
            else:
                state = f"not confirmed after {now - item.typed_at:.0f} s"
            lines += render_pending(item.text, to=item.to, state=state)
        return [*lines, ("class:prompt", f"{strip_unsafe(self.name)}› ")]

    def bar(self, address: str) -> Bar:
        """The toolbar's content: the state, then where, who and how many."""
        return Bar(
            status=self.status,
            detail=self.status_detail,
            problem=self.status_problem,
            server=self.server,
            name=self.name,
            members=self.members,
            address=address,
        )

    def who_offline(self) -> list[Fragments]:
        """`/who` with no connection: the names last known."""
        names = ", ".join(sorted(self.names, key=fold_name))
        return [render_notice(f"offline; last known: {names}")]

    @property
    def unconfirmed(self) -> int:
        """Messages handed to the server that it has not confirmed yet."""
        return sum(item.sent for item in self.pending.values())

    # --- events from the server ------------------------------------------------------------

    def resume(self) -> tuple[int, str | None]:
        """What a rejoin's `hello` carries: `since`, the newest `seq` heard of, so the welcome
        brings what was missed; and `token`, the latest welcome's, so a connection of ours the
        server still thinks alive gives the name back (PROTOCOL.md, Resuming; Taking a name
        back)."""
        return self.last_seq, self.token or None

    def welcomed(self, welcome: Welcome, *, rejoined: bool) -> list[Fragments]:
        """Take the room from a `welcome`; after a rejoin, what was missed while away, once."""
        since = self.last_seq
        token_shown = bool(self.token)  # what `resume` gave the rejoin's hello
        self.name = welcome.name
        self.server = welcome.server
        self.max_text = welcome.max_text
        self.members = welcome.members
        self.names = set(welcome.names)
        self.token = welcome.token
        if rejoined:
            lines = self._back(welcome, since, remembers=token_shown and welcome.seq >= since)
        else:
            lines = self.look.welcome(welcome)
        # From the welcome on, messages come live: a later rejoin resumes after these.
        self.last_seq = max([welcome.seq, *(message.seq for message in welcome.history)])
        self._shown(welcome.history)
        return lines

    def _back(self, welcome: Welcome, since: int, *, remembers: bool) -> list[Fragments]:
        """The lines of a rejoin: back online, what is missing, and what was missed.

        `remembers`: the server can tell a resent id from a new message (the rejoin showed our
        token, so it is the same member, and it did not lose its memory since).
        """
        restarted = welcome.seq < since  # its `seq` began again: it lost what we saw
        if restarted:
            self.oldest_seq = None  # /history pages back through the new `seq`s
        # Only what came after `since`, even from a server that did not resume from there.
        missed = welcome.history if restarted else [m for m in welcome.history if m.seq > since]
        lines = [render_notice(f"Back online as {self.name}; {members_online(self.members)}.")]
        missed = self._settle_unsure(missed, remembers, lines)
        unaccounted = missed[0].seq - since - 1 if missed and not restarted else 0
        if unaccounted > 0:
            lines.append(render_problem(
                f"{counted(unaccounted, 'message')} from while you were away are missing: "
                "the server no longer has them or did not send them all."
            ))  # fmt: skip
        elif welcome.gap or restarted:
            lines.append(render_problem(
                "Messages from while you were away may be missing: the server no longer has them all."
            ))  # fmt: skip
        if missed:
            lines.append(render_notice(f"{counted(len(missed), 'message')} while you were away:"))
        # Not the greeting again: the message of the day, then the missed messages.
        return lines + self.look.welcome(welcome, missed, "while you were away")[1:]

    def _settle_unsure(
        self, missed: list[Message], remembers: bool, lines: list[Fragments]
    ) -> list[Message]:
        """Decide, after a rejoin, what becomes of each message whose ack the broken connection
        never brought: resent with its id while the server remembers it (PROTOCOL.md, Exactly
        once), and then shown once, when confirmed, not also among the missed messages; else
        settled by the missed messages if they hold it, or said to be in doubt.  The missed
        messages to show are returned."""
        shown = list(missed)
        for key, item in list(self.pending.items()):
            if not item.unsure:
                continue
            found = next((m for m in shown if _is_ours(m, item)), None)
            if remembers and self.clock() - (item.first_sent or 0.0) < SERVER_REMEMBERS:
                if found is not None:
                    shown.remove(found)
                continue
            del self.pending[key]
            if found is None:
                lines.append(render_problem(f"{IN_DOUBT}: {item.text[:80]}"))
        return shown

    def _shown(self, messages: list[Message]) -> None:
        """`messages` are on the screen: /history pages back from the oldest of them."""
        for message in messages:
            if self.oldest_seq is None or message.seq < self.oldest_seq:
                self.oldest_seq = message.seq

    def receive(self, event: object) -> Outcome:
        """Update the state for one server event; what to show for it."""
        outcome = Outcome()
        if isinstance(event, HistoryPage):
            outcome.lines += self._page(event)
        elif isinstance(event, Results):
            outcome.lines += self._results(event)
        elif isinstance(event, Ack):
            self._confirmed(event, outcome)
        elif isinstance(event, Error) and event.id in self.pending:
            self._refused(self.pending[event.id], event, outcome)
        elif isinstance(event, (Banner, Welcome)):
            pass
        elif isinstance(event, Invalid):
            outcome.lines.append(render_problem("the server sent a line that could not be read."))
        elif isinstance(event, Shutdown) and event.reason in (
            LeaveReason.KICKED,
            LeaveReason.TIMEOUT,
            LeaveReason.REPLACED,  # another connection took the name with our token
        ):
            # Removed: the chat ends here with this sentence (reconnecting would take the name
            # back from whoever has it now, or undo the operator's decision).
            self.removed = strip_unsafe(event.message).strip() or "the server removed you."
            self.status = "removed"
        else:
            self._track(event, outcome)
            if self.noise.shows(event):
                outcome.lines += self.look.event(event, self.name)
        return outcome

    def _page(self, page: HistoryPage) -> list[Fragments]:
        if not page.messages:
            return self.look.asked("no earlier messages", [], self.name)
        self._shown(page.messages)
        title = f"{counted(len(page.messages), 'earlier message')}"
        end = "/history for more" if page.more else "the oldest message kept"
        return self.look.asked(title, page.messages, self.name, end)

    def _results(self, results: Results) -> list[Fragments]:
        words = self._searches.pop(results.id or "", "")
        asked = f"search “{words}”" if words else "search"
        if not results.messages:
            return self.look.asked(f"{asked}: nothing found", [], self.name)
        found = f"{asked}: {len(results.messages)} found, newest first"
        return self.look.asked(found, results.messages, self.name, "end of search")

    def _confirmed(self, ack: Ack, outcome: Outcome) -> None:
        if ack.seq is not None:
            self.last_seq = max(self.last_seq, ack.seq)
            if self.oldest_seq is None:
                self.oldest_seq = ack.seq
        item = self.pending.pop(ack.id, None) if ack.id is not None else None
        if item is not None:
            outcome.lines += self.look.own(
                item.text, ack.ts, self.name, item.to, ack.delivered, item.me
            )

    def _refused(self, item: PendingMessage, error: Error, outcome: Outcome) -> None:
        if self._may_wait_for_recipient(item, error):
            item.sent = False
            item.waiting_for = fold_name(item.to or "")
            waits = f"{item.to} is not back yet; your private message waits for them."
            outcome.lines.append(render_notice(waits))
        else:
            del self.pending[item.id]
            outcome.lines.append(render_problem(f"not sent ({error.message}): {item.text[:80]}"))

    def _may_wait_for_recipient(self, item: PendingMessage, error: Error) -> bool:
        """A private message typed offline, refused just after we rejoined: its recipient has
        probably not rejoined yet either, so it waits a little instead of failing."""
        return (
            error.code is ErrorCode.NO_SUCH_MEMBER
            and item.to is not None
            and item.resent_at is not None
            and self.clock() - item.resent_at < DM_WAIT
        )

    def _track(self, event: object, outcome: Outcome) -> None:
        if isinstance(event, Message):
            self.last_seq = max(self.last_seq, event.seq)
            self._shown([event])
            self._spoke(event.sender)
            outcome.bell = mentions(event.text, self.name)
            outcome.heard = event
        elif isinstance(event, Private):
            self._spoke(event.sender)
            outcome.bell = True
            outcome.heard = event
        elif isinstance(event, (Joined, Left, Members)):
            self.members = event.members
            if isinstance(event, Joined):
                self.names.add(event.name)
                outcome.send = self._returned(event.name)
            elif isinstance(event, Left):
                self.names.discard(event.name)
            else:
                self.names = set(event.names)
        elif isinstance(event, Renamed):
            self.names.discard(event.old)
            self.names.add(event.new)
            if event.old in self.speakers:
                self.speakers[self.speakers.index(event.old)] = event.new
            self.noise.renamed(event.old, event.new)
            if fold_name(event.old) == fold_name(self.name):
                self.name = event.new
        elif isinstance(event, Shutdown):
            self.status = "server shutting down"

    def _returned(self, name: str) -> list[PendingMessage]:
        """The private messages that waited for `name`, which no longer wait."""
        released = [item for item in self.pending.values() if item.waiting_for == fold_name(name)]
        for item in released:
            item.waiting_for = None
        return released

    def _spoke(self, name: str) -> None:
        self.noise.spoke(name)
        if name in self.speakers:
            self.speakers.remove(name)
        self.speakers.insert(0, name)
        del self.speakers[SPEAKERS_KEPT:]

    # --- what the person does --------------------------------------------------------------

    def queue(self, text: str, to: str | None = None, *, me: bool = False) -> Outcome:
        """A message typed (an action with `me`): refused here if the server would refuse it,
        else pending, to send."""
        problem = text_problem(text, self.max_text)
        if problem:
            return Outcome([render_problem(f"{problem[1]}; ↑ brings the line back to edit")])
        item = PendingMessage(id=next(self._ids), text=text, to=to, typed_at=self.clock(), me=me)
        self.pending[item.id] = item
        return Outcome(send=[item])

    def sending(self, item: PendingMessage) -> Say | Dm:
        """The event for `item`, which is about to be sent: its patience starts now."""
        item.typed_at = self.clock()
        if item.first_sent is None:
            item.first_sent = item.typed_at
            item.sent_as = self.name
        item.unsure = False
        return item.event()

    def history_request(self, limit: int) -> HistoryRequest:
        """/history: the `limit` messages before the oldest one shown (the newest if none)."""
        return HistoryRequest(before=self.oldest_seq, limit=limit, id=next(self._request_ids))

    def search_request(self, words: str) -> SearchRequest:
        """/search: remembered by its id, so that its results can say what was looked for."""
        request = SearchRequest(text=words, id=next(self._request_ids))
        self._searches[request.id or ""] = words
        return request

    def nick_offline(self, wanted: str) -> list[Fragments]:
        """Offline, /nick chooses the name the next rejoin uses (the old one may be taken)."""
        name = normalize_name(wanted)
        problem = name_problem(name)
        if problem:
            return [render_problem(problem)]
        self.name = name
        return [render_notice(f"You will rejoin as {name}.")]

    def leaving(self) -> list[Fragments]:
        """What was never confirmed, said once as the person leaves; nothing is pending after."""
        lines = []
        for item in self.pending.values():
            if item.unsure:
                why = IN_DOUBT
            else:
                why = "not confirmed" if item.sent else "not sent (offline)"
            lines.append(render_problem(f"{why}: {item.text[:80]}"))
        self.pending.clear()
        return lines

    # --- the link --------------------------------------------------------------------------

    def lost(self, reason: str) -> list[Fragments]:
        """The connection broke: offline.  What was not sent yet waits for the next connection;
        a message sent but not confirmed is resent with its id after the rejoin (the server
        delivers an id once: `_settle_unsure`).  A private message has no such promise: it may
        or may not have arrived, and is said so, never sent twice."""
        self.status = "offline"
        lines = [render_problem(f"{reason[0].upper()}{reason[1:]} Reconnecting…")]
        for key, item in list(self.pending.items()):
            if item.sent and item.to is not None:
                del self.pending[key]
                lines.append(render_problem(f"{IN_DOUBT}: {item.text[:80]}"))
            elif item.sent:
                item.sent = False
                item.unsure = True
        return lines

    def retrying(self, seconds_left: float, problem: str) -> None:
        """Offline, with the next try `seconds_left` away and why the last one failed."""
        self.status = "offline"
        self.status_detail = f"retrying in {math.ceil(seconds_left)} s"
        self.status_problem = problem

    def connecting(self) -> None:
        self.status = "connecting…"
        self.status_detail = self.status_problem = ""

    def online(self) -> None:
        self.status = "online"

    def removed_by_password(self, refusal: str) -> None:
        """A rejoin's password refused: retrying would only lock this address out (the server
        counts wrong passwords), so the chat ends."""
        self.removed = (
            f"the server no longer takes your password ({refusal.rstrip('.')}); "
            "join again with the new one."
        )
        self.status = "removed"

    def next_unsent(self) -> PendingMessage | None:
        """After a rejoin: the oldest message not sent yet (typed offline), marked as resent."""
        item = next((i for i in self.pending.values() if not i.sent), None)
        if item is not None:
            item.resent_at = self.clock()
        return item

    def expire_waiting(self) -> list[Fragments]:
        """Private messages whose recipient did not come back in time: given up, and said so."""
        lines = []
        for key, item in list(self.pending.items()):
            waited = self.clock() - (item.resent_at or item.typed_at)
            if item.waiting_for and waited > DM_WAIT:
                del self.pending[key]
                lines.append(
                    render_problem(f"not sent ({item.to} did not come back): {item.text[:80]}")
                )
        return lines


def _is_ours(message: Message, item: PendingMessage) -> bool:
    """True when `message` in the room's history is `item` as it arrived (or one just like it)."""
    return (
        fold_name(message.sender) == fold_name(item.sent_as)
        and message.text == item.text
        and message.me == item.me
        and item.to is None
    )
