"""The chat screen's rules without a screen: session state, typed commands, completion and the
reconnect policy, fed with events and a clock the test sets. No server, no terminal, no loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from tcpchat.client.connection import ChatError, JoinRefused, TlsRefused
from tcpchat.client.ui.commands import COMMANDS, Problem, help_lines, parse_typed
from tcpchat.client.ui.completer import ChatCompleter
from tcpchat.client.ui.reconnect import Retries
from tcpchat.client.ui.render import Fragments, fragments_text
from tcpchat.client.ui.state import (
    ACK_PATIENCE,
    DM_WAIT,
    SERVER_REMEMBERS,
    ChatState,
    PendingMessage,
)
from tcpchat.protocol import (
    Ack,
    Bye,
    Dm,
    Error,
    ErrorCode,
    HelpRequest,
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
    Shutdown,
    Welcome,
    Who,
)

TS = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def welcome(
    names: tuple[str, ...] = ("alice", "bob"),
    history: tuple[Message, ...] = (),
    max_text: int = 100,
    *,
    seq: int | None = None,
    token: str = "token",
    gap: bool = False,
) -> Welcome:
    return Welcome(
        name="alice",
        members=len(names),
        names=list(names),
        server="testserver",
        motd=None,
        max_text=max_text,
        version=1,
        history=list(history),
        seq=max((m.seq for m in history), default=0) if seq is None else seq,
        token=token,
        gap=gap,
    )


def message(seq: int, sender: str = "bob", text: str = "hi") -> Message:
    return Message(seq=seq, sender=sender, text=text, ts=TS)


def texts(lines: list[Fragments]) -> list[str]:
    return [fragments_text(line) for line in lines]


def sent(state: ChatState, text: str, to: str | None = None) -> PendingMessage:
    """Type `text` and hand it to a connection, as the screen does when online."""
    (item,) = state.queue(text, to).send
    state.sending(item)
    item.sent = True
    return item


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> ChatState:
    return ChatState(welcome(), clock=clock)


# --- typed lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("hello", Say(text="hello")),
        ("hello  \r\n", Say(text="hello")),
        ("two\r\nlines\rhere", Say(text="two\nlines\nhere")),
        ("//shrug", Say(text="/shrug")),
        ("/who", Who()),
        ("/WHO everyone", Who()),
        ("/nick  alicia ", Nick(name="alicia")),
        ("/msg bob see you", Dm(to="bob", text="see you")),
        ("/quit", Bye()),
        ("/help", HelpRequest()),
        ("/me waves", Say(text="waves", me=True)),
        ("/history", HistoryRequest(limit=20)),
        ("/history 5", HistoryRequest(limit=5)),
        ("/search  lunch  friday ", SearchRequest(text="lunch  friday")),
        ("/me", Problem("usage: /me TEXT")),
        ("/history many", Problem("usage: /history [N], N from 1 to 500.")),
        ("/history 0", Problem("usage: /history [N], N from 1 to 500.")),
        ("/search", Problem("usage: /search WORDS")),
        ("/nick", Problem("usage: /nick NAME")),
        ("/msg bob   ", Problem("usage: /msg NAME TEXT")),
        ("/Frobnicate now", Problem("unknown command /frobnicate; /help lists them.")),
        ("   ", None),
        ("", None),
    ],
)
def test_a_typed_line_is_a_message_a_command_or_a_problem(typed, parsed):
    assert parse_typed(typed) == parsed


def test_help_is_the_command_table_and_the_escape():
    lines = help_lines()
    assert len(lines) == len(COMMANDS) + 1
    for line, (usage, meta) in zip(lines, COMMANDS.values(), strict=False):
        assert line.startswith(usage) and line.endswith(meta)
    assert "//" in lines[-1]


# --- the room as heard -------------------------------------------------------------------------


def test_joins_leaves_and_member_lists_keep_the_names_and_the_count(state):
    state.receive(Joined(name="carol", members=3, ts=TS))
    assert (state.members, state.names) == (3, {"alice", "bob", "carol"})
    state.receive(Left(name="bob", members=2, reason=LeaveReason.QUIT, ts=TS))
    assert (state.members, state.names) == (2, {"alice", "carol"})
    state.receive(Members(names=["alice", "dave"], members=2))
    assert state.names == {"alice", "dave"}


def test_a_rename_follows_the_member_and_oneself(state):
    state.receive(message(1, "bob"))
    state.receive(Renamed(old="bob", new="robert", ts=TS))
    assert "robert" in state.names and "bob" not in state.names
    assert state.speakers == ["robert"]
    state.receive(Renamed(old="Alice", new="alicia", ts=TS))
    assert state.name == "alicia"


def test_names_come_recent_speakers_first_then_by_name(clock):
    state = ChatState(welcome(("alice", "anna", "bob", "Carol", "dave")), clock=clock)
    state.receive(message(1, "dave"))
    state.receive(Private(sender="bob", to="alice", text="psst", ts=TS))
    assert state.names_by_recency() == ["bob", "dave", "alice", "anna", "Carol"]


def test_a_mention_or_a_private_message_rings_the_bell(state):
    assert not state.receive(message(1, text="lunch?")).bell
    assert state.receive(message(2, text="alice: lunch?")).bell
    assert state.receive(Private(sender="bob", to="alice", text="psst", ts=TS)).bell


def test_being_kicked_ends_the_session_with_the_servers_words(state):
    outcome = state.receive(Shutdown(message="kicked: flooding", reason=LeaveReason.KICKED))
    assert (state.removed, state.status, outcome.lines) == ("kicked: flooding", "removed", [])


def test_a_server_stopping_is_a_status_not_a_removal(state):
    state.receive(Shutdown(message="bye all"))
    assert (state.removed, state.status) == (None, "server shutting down")


# --- what the person sends ---------------------------------------------------------------------


def test_a_message_is_pending_until_its_ack_then_shown_as_delivered(state, clock):
    item = sent(state, "hello")
    assert item.event() == Say(text="hello", id=item.id)
    assert "sending" in fragments_text(state.prompt())
    clock.now += ACK_PATIENCE + 2
    assert "not confirmed after 12 s" in fragments_text(state.prompt())
    outcome = state.receive(Ack(id=item.id, seq=7, ts=TS, delivered=1))
    assert state.pending == {} and state.last_seq == 7
    (line,) = texts(outcome.lines)
    assert "alice: hello" in line and "✓ delivered to 1" in line


def test_a_message_the_server_would_refuse_is_refused_here_and_not_kept(clock):
    state = ChatState(welcome(max_text=5), clock=clock)
    outcome = state.queue("far too long")
    assert outcome.send == [] and state.pending == {}
    assert "↑ brings the line back" in texts(outcome.lines)[0]


def test_an_error_for_a_message_drops_it_and_says_why(state):
    item = sent(state, "hello", to="nobody")
    error = Error(code=ErrorCode.NO_SUCH_MEMBER, message="no one called nobody", id=item.id)
    (line,) = texts(state.receive(error).lines)
    assert state.pending == {} and "not sent (no one called nobody): hello" in line


def test_a_private_message_resent_after_a_rejoin_waits_for_its_recipient(state, clock):
    item = state.queue("see you", to="bob").send[0]  # typed offline: never sent
    state.lost("lost the connection.")
    assert state.next_unsent() is item and item.resent_at == clock.now
    state.sending(item)
    item.sent = True
    error = Error(code=ErrorCode.NO_SUCH_MEMBER, message="no bob", id=item.id)
    assert "bob is not back yet" in texts(state.receive(error).lines)[0]
    assert (item.sent, item.waiting_for) == (False, "bob")
    assert "waiting for bob to come back" in fragments_text(state.prompt())
    released = state.receive(Joined(name="Bob", members=2, ts=TS)).send
    assert released == [item] and item.waiting_for is None


def test_a_waiting_private_message_is_given_up_after_its_patience(state, clock):
    item = state.queue("see you", to="bob").send[0]
    state.next_unsent()
    state.receive(Error(code=ErrorCode.NO_SUCH_MEMBER, message="no bob", id=item.id))
    assert state.expire_waiting() == []
    clock.now += DM_WAIT + 1
    (line,) = texts(state.expire_waiting())
    assert "not sent (bob did not come back): see you" in line and state.pending == {}


def test_nick_offline_chooses_the_rejoin_name_or_says_what_is_wrong(state):
    assert texts(state.nick_offline("alicia")) == ["* You will rejoin as alicia."]
    assert state.name == "alicia"
    (problem,) = texts(state.nick_offline("no spaces please"))
    assert problem.startswith("!") and state.name == "alicia"


def test_leaving_reports_each_unconfirmed_message_once(state):
    sent(state, "in flight")
    state.queue("typed offline").send[0].sent = False
    assert texts(state.leaving()) == [
        "! not confirmed: in flight",
        "! not sent (offline): typed offline",
    ]
    assert state.pending == {} and state.leaving() == []


# --- the link ----------------------------------------------------------------------------------


def test_a_lost_link_drops_a_private_message_that_may_have_arrived_and_keeps_the_rest(state):
    in_flight = sent(state, "maybe arrived", to="bob")
    said = sent(state, "said")
    waiting = state.queue("typed offline").send[0]
    lines = texts(state.lost("lost the connection to the server."))
    assert state.status == "offline"
    assert lines[0] == "! Lost the connection to the server. Reconnecting…"
    assert "it may not have arrived: maybe arrived" in lines[1] and len(lines) == 2
    assert in_flight.id not in state.pending
    assert "not confirmed; sent again once back" in fragments_text(state.prompt())
    assert list(state.pending.values()) == [said, waiting] and state.next_unsent() is said


def test_a_message_unconfirmed_when_the_link_broke_is_resent_with_its_id_once_back(state):
    item = sent(state, "important")
    state.lost("lost the connection.")
    arrived = Message(seq=1, sender="alice", text="important", ts=TS)
    lines = texts(
        state.welcomed(welcome(history=(arrived, message(2, text="later"))), rejoined=True)
    )
    assert not any("may not have arrived" in line for line in lines)
    assert not any("alice: important" in line for line in lines)  # shown once: when confirmed
    assert state.next_unsent() is item
    assert state.sending(item) == Say(text="important", id=item.id)
    (line,) = texts(state.receive(Ack(id=item.id, seq=1, ts=TS, delivered=1)).lines)
    assert "alice: important" in line and "✓ delivered to 1" in line


def test_a_server_that_cannot_remember_gets_nothing_resent(clock):
    state = ChatState(welcome(seq=40), clock=clock)
    item = sent(state, "lost maybe")
    state.lost("lost the connection.")
    lines = texts(state.welcomed(welcome(seq=0), rejoined=True))  # restarted, history gone
    assert any("it may not have arrived: lost maybe" in line for line in lines)
    assert state.next_unsent() is None and item.id not in state.pending


def test_no_token_or_too_long_away_means_nothing_is_resent(state, clock):
    state.token = ""
    sent(state, "no token")
    state.lost("lost the connection.")
    lines = texts(state.welcomed(welcome(), rejoined=True))
    assert any("it may not have arrived: no token" in line for line in lines)
    sent(state, "long ago")
    state.lost("lost the connection.")
    clock.now += SERVER_REMEMBERS + 1
    lines = texts(state.welcomed(welcome(), rejoined=True))
    assert any("it may not have arrived: long ago" in line for line in lines)
    assert state.pending == {}


def test_a_message_the_missed_history_holds_arrived_even_if_it_cannot_be_resent(state, clock):
    sent(state, "made it")
    state.lost("lost the connection.")
    clock.now += SERVER_REMEMBERS + 1
    arrived = Message(seq=1, sender="alice", text="made it", ts=TS)
    lines = texts(state.welcomed(welcome(history=(arrived,)), rejoined=True))
    assert not any("may not have arrived" in line for line in lines)
    assert any(line.endswith("alice: made it") for line in lines) and state.pending == {}


def test_leaving_while_offline_reports_what_may_not_have_arrived(state):
    sent(state, "in doubt")
    state.lost("lost the connection.")
    assert texts(state.leaving()) == [
        "! not confirmed before the connection was lost; it may not have arrived: in doubt"
    ]


def test_the_toolbar_says_when_the_next_try_is_and_why_the_last_failed(state):
    state.retrying(2.2, "the server is full")
    bar = state.bar("127.0.0.1:7000")
    assert (bar.status, bar.detail, bar.problem) == (
        "offline",
        "retrying in 3 s",
        "the server is full",
    )
    state.connecting()
    assert (state.status, state.status_detail, state.status_problem) == ("connecting…", "", "")


def test_a_rejoin_resumes_after_the_newest_seq_with_the_latest_token(clock):
    state = ChatState(welcome(seq=5, token="first"), clock=clock)
    state.welcomed(welcome(seq=5, token="first"), rejoined=False)
    assert state.resume() == (5, "first")
    state.receive(message(6))
    assert state.resume() == (6, "first")
    away = (message(7, text="away 7"), message(8, "carol", "away 8"))
    lines = texts(state.welcomed(welcome(history=away, token="second"), rejoined=True))
    assert lines[:3] == [
        "* Back online as alice; 2 members online.",
        "* 2 messages while you were away:",
        "── while you were away ──",
    ]
    assert lines[3].endswith("bob: away 7") and lines[4].endswith("carol: away 8")
    assert lines[5:] == ["── now ──"]
    assert state.resume() == (8, "second")


def test_a_rejoin_shows_only_the_history_not_seen_and_counts_what_is_missing(state):
    state.welcomed(welcome(history=(message(1), message(2))), rejoined=False)
    assert state.last_seq == 2
    history = tuple(message(seq, text=f"away {seq}") for seq in (6, 7))
    lines = texts(state.welcomed(welcome(history=(message(2), *history), gap=True), rejoined=True))
    assert lines[0] == "* Back online as alice; 2 members online."
    assert lines[1].startswith("! 3 messages from while you were away are missing")
    assert lines[2] == "* 2 messages while you were away:"
    assert any(line.endswith("bob: away 7") for line in lines)
    assert not any(line.endswith("bob: hi") for line in lines)
    assert state.last_seq == 7


def test_a_gap_the_server_reports_is_said_plainly(state):
    state.receive(message(6))
    lines = texts(state.welcomed(welcome(seq=9, gap=True), rejoined=True))
    assert lines[1] == (
        "! Messages from while you were away may be missing: the server no longer has them all."
    )
    assert state.resume()[0] == 9


def test_a_restarted_server_starts_seq_again_and_its_history_is_shown(state):
    state.receive(message(40))
    restarted = welcome(history=(message(1, text="new start"),), gap=True)
    lines = texts(state.welcomed(restarted, rejoined=True))
    assert lines[1].startswith("! Messages from while you were away may be missing")
    assert any(line.endswith("bob: new start") for line in lines) and state.last_seq == 1
    assert state.history_request(20).before == 1


def test_a_connection_replaced_by_another_ends_the_session(state):
    said = "You connected again from elsewhere; this connection is closed."
    state.receive(Shutdown(message=said, reason=LeaveReason.REPLACED))
    assert (state.removed, state.status) == (said, "removed")


# --- actions, history and search --------------------------------------------------------------


def test_an_action_is_sent_with_me_and_shown_as_one_mine_and_others(state):
    (item,) = state.queue("waves", me=True).send
    assert state.sending(item) == Say(text="waves", id=item.id, me=True)
    (mine,) = texts(state.receive(Ack(id=item.id, seq=1, ts=TS, delivered=1)).lines)
    assert mine.endswith("* alice waves  ✓ delivered to 1")
    action = Message(seq=2, sender="bob", text="nods", ts=TS, me=True)
    (theirs,) = texts(state.receive(action).lines)
    assert theirs.endswith(" * bob nods")


def test_history_pages_back_from_the_oldest_message_shown(clock):
    state = ChatState(welcome(history=(message(8), message(9))), clock=clock)
    state.welcomed(welcome(history=(message(8), message(9))), rejoined=False)
    assert state.history_request(2) == HistoryRequest(before=8, limit=2, id="q1")
    page = HistoryPage(
        messages=[message(6, text="six"), message(7, text="seven")], more=True, id="q1"
    )
    lines = state.receive(page).lines
    assert texts(lines)[0] == "── 2 earlier messages ──"
    assert texts(lines)[1].endswith("bob: six") and texts(lines)[2].endswith("bob: seven")
    assert texts(lines)[-1] == "── /history for more ──"
    assert all("class:asked" in style for line in lines for style, _ in line[:1])
    assert state.history_request(20).before == 6
    empty = HistoryPage(messages=[], more=False, id="q3")
    assert texts(state.receive(empty).lines) == ["── no earlier messages ──"]


def test_history_with_nothing_shown_yet_starts_after_the_newest(state):
    assert state.history_request(20).before is None
    state.receive(message(3))
    assert state.history_request(20).before == 3


def test_search_results_say_what_was_looked_for_and_when_each_was_said(state):
    request = state.search_request("lunch")
    assert request == SearchRequest(text="lunch", id="q1")
    found = Results(messages=[message(4, text="lunch now?"), message(2, text="lunch?")], id="q1")
    lines = texts(state.receive(found).lines)
    assert lines[0] == "── search “lunch”: 2 found, newest first ──"
    assert lines[1].startswith(TS.astimezone().strftime("%Y-%m-%d %H:%M"))
    assert lines[1].endswith("bob: lunch now?") and lines[-1] == "── end of search ──"
    none = texts(state.receive(Results(messages=[], id=state.search_request("x").id)).lines)
    assert none == ["── search “x”: nothing found ──"]


# --- completion over a name source -------------------------------------------------------------


@dataclass
class Names:
    name: str
    recent: list[str] = field(default_factory=list)

    def names_by_recency(self) -> list[str]:
        return self.recent


def completions(names: Names, text: str) -> list[str]:
    found = ChatCompleter(names).get_completions(Document(text), CompleteEvent())
    return [completion.text for completion in found]


def test_completion_needs_only_a_name_source():
    names = Names("alice", ["Bob", "ALICE", "barbara"])
    assert completions(names, "b") == ["Bob: ", "barbara: "]
    assert completions(names, "/msg ") == ["Bob ", "barbara "]
    assert completions(names, "/n") == ["/nick "]


# --- reconnecting ------------------------------------------------------------------------------


def test_retries_wait_twice_as_long_each_time_up_to_the_most():
    retries = Retries(first=1.0, most=5.0, jitter=lambda low, high: high)
    waits = []
    for _ in range(5):
        waits.append(retries.wait())
        retries.failed(ChatError("cannot connect."), "alice")
    assert waits == [1.25, 2.5, 5.0, 6.25, 6.25]


def test_a_failed_try_is_said_once_per_new_reason():
    retries = Retries(first=1.0, most=5.0)
    door = ChatError("the server refused the connection: too many connections.")
    assert retries.failed(door, "alice").said == [
        "The server refused the connection: too many connections."
    ]
    again = retries.failed(door, "alice")
    assert again.said == [] and again.problem.startswith("the server refused")
    taken = JoinRefused(Error(code=ErrorCode.NAME_TAKEN, message="alice is taken."))
    assert retries.failed(taken, "alice").said == [
        "alice is taken. Type /nick NAME to rejoin as someone else."
    ]
    assert retries.failed(taken, "alice").said == []
    tls = TlsRefused("the certificate of x has changed!")
    first = retries.failed(tls, "alice")
    assert (first.said, first.problem) == (["The certificate of x has changed!"], "TLS refused")
    assert retries.failed(tls, "alice").said == []
    assert retries.failed(ChatError("x refused the connection."), "alice").problem == ""


def test_a_password_no_longer_taken_ends_the_retries():
    refused = JoinRefused(Error(code=ErrorCode.AUTH_FAILED, message="wrong password."))
    failure = Retries().failed(refused, "alice")
    assert failure.password_refused == "wrong password."


def test_a_password_refusal_ends_the_session(state):
    state.removed_by_password("wrong password.")
    assert state.status == "removed"
    assert state.removed == (
        "the server no longer takes your password (wrong password); join again with the new one."
    )
