"""What the room remembers, over the wire (PROTOCOL.md, Rules: Resuming, Exactly once, Taking a
name back; `history` and `search`): a real server in process, raw JSON and plain clients.
"""

from __future__ import annotations

from typing import Any

from support.chat import (
    expect_closed,
    expect_error,
    hello,
    join,
    next_of,
    plain_sync,
    plain_until,
    say,
    sync,
)
from support.running import RunningServer
from support.wire import LineClient


def said(client: LineClient, count: int, prefix: str = "m") -> list[int]:
    """`count` messages `prefix1`, `prefix2`... from `client`; their `seq`s from the acks."""
    seqs = []
    for number in range(1, count + 1):
        client.send_json(say(f"{prefix}{number}"))
        seqs.append(client.expect("ack")["seq"])
    return seqs


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [message["text"] for message in messages]


def members(server: RunningServer, *names: str) -> list[LineClient]:
    """JSON members called `names`, each past the `joined` of those after it."""
    clients: list[LineClient] = []
    for name in names:
        client, _ = join(server, name)
        for earlier in clients:
            assert earlier.expect("joined")["name"] == name
        clients.append(client)
    return clients


def rejoin(server: RunningServer, name: str, **fields: Any) -> tuple[LineClient, dict[str, Any]]:
    client = server.connect()
    client.read_line()  # the banner
    client.send_json(hello(name, **fields))
    return client, client.expect("welcome")


# --- say.me ------------------------------------------------------------------------------------


def test_an_action_reaches_json_members_with_me_and_plain_members_as_a_star_line(
    chat: RunningServer,
) -> None:
    alice, bob = members(chat, "alice", "bob")
    carol = chat.join_plain("carol")
    alice.expect("joined")
    bob.expect("joined")
    alice.send_json({"type": "say", "text": "waves", "me": True, "id": "a1"})
    assert alice.expect("ack")["id"] == "a1"
    message = bob.expect("message")
    assert (message["from"], message["text"], message["me"]) == ("alice", "waves", True)
    plain_until(carol, r"^\[\d\d:\d\d\] \* alice waves$")
    alice.send_json(say("plain words"))
    assert "me" not in bob.expect("message")


def test_plain_me_is_an_action_for_everyone(chat: RunningServer) -> None:
    (alice,) = members(chat, "alice")
    carol = chat.join_plain("carol")
    alice.expect("joined")
    carol.send_line("/me stretches")
    message = alice.expect("message")
    assert (message["from"], message["text"], message["me"]) == ("carol", "stretches", True)
    plain_sync(carol, 2)  # the sender gets no echo of its own action, as for any message


# --- history and search ------------------------------------------------------------------------


def test_history_pages_backwards_until_there_is_no_more(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    said(alice, 7)
    alice.send_json({"type": "history", "limit": 3, "id": "h1"})
    page = alice.expect("history")
    assert (texts(page["messages"]), page["more"], page["id"]) == (["m5", "m6", "m7"], True, "h1")
    assert all(message["type"] == "message" for message in page["messages"])
    alice.send_json({"type": "history", "before": page["messages"][0]["seq"], "limit": 3})
    page = alice.expect("history")
    assert (texts(page["messages"]), page["more"]) == (["m2", "m3", "m4"], True)
    alice.send_json({"type": "history", "before": page["messages"][0]["seq"], "limit": 3})
    page = alice.expect("history")
    assert (texts(page["messages"]), page["more"]) == (["m1"], False)
    assert "id" not in page or page["id"] is None


def test_history_gives_fifty_unless_asked_and_never_more_than_five_hundred(
    chat: RunningServer,
) -> None:
    alice, _ = join(chat, "alice")
    said(alice, 60)
    alice.send_json({"type": "history"})
    page = alice.expect("history")
    assert texts(page["messages"]) == [f"m{n}" for n in range(11, 61)]
    assert page["more"] is True
    alice.send_json({"type": "history", "limit": 100_000})
    assert len(alice.expect("history")["messages"]) == 60  # all there are, under the cap


def test_search_finds_whole_words_in_any_case_and_order_newest_first(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    for text in ("Lunch at noon?", "lunchtime soon", "noon LUNCH it is", "no lunch", "dinner"):
        alice.send_json(say(text))
        alice.expect("ack")
    alice.send_json({"type": "search", "text": "lunch NOON", "id": "s1"})
    results = alice.expect("results")
    assert results["id"] == "s1"
    assert texts(results["messages"]) == ["noon LUNCH it is", "Lunch at noon?"]
    alice.send_json({"type": "search", "text": "lunch", "limit": 2})
    assert texts(alice.expect("results")["messages"]) == ["no lunch", "noon LUNCH it is"]
    alice.send_json({"type": "search", "text": "breakfast"})
    assert alice.expect("results")["messages"] == []


def test_history_and_search_need_a_member(chat: RunningServer) -> None:
    client = chat.connect()
    client.read_line()
    client.send_json({"type": "history", "id": "h"})
    expect_error(client, "not_joined", "h")
    client.send_json({"type": "search", "text": "x", "id": "s"})
    expect_error(client, "not_joined", "s")


# --- resuming ------------------------------------------------------------------------------------


def test_welcome_says_the_newest_seq(chat: RunningServer) -> None:
    alice, first = join(chat, "alice")
    assert first["seq"] == 0
    seqs = said(alice, 3)
    _, welcome = join(chat, "bob")
    assert welcome["seq"] == seqs[-1]


def test_since_gives_what_was_missed_in_order_without_a_gap(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    seqs = said(alice, 5)
    _, welcome = rejoin(chat, "bob", since=seqs[1])
    assert texts(welcome["history"]) == ["m3", "m4", "m5"]
    assert welcome["gap"] is False
    _, welcome = rejoin(chat, "carol", since=seqs[-1])
    assert (welcome["history"], welcome["gap"]) == ([], False)


def test_since_beyond_the_newest_is_an_empty_history_and_a_gap(chat: RunningServer) -> None:
    alice, _ = join(chat, "alice")
    seqs = said(alice, 2)
    _, welcome = rejoin(chat, "bob", since=seqs[-1] + 10)
    assert (welcome["history"], welcome["gap"], welcome["seq"]) == ([], True, seqs[-1])


def test_since_older_than_what_is_kept_is_a_gap(start_server: Any) -> None:
    server = start_server(history=0)  # the operator keeps no history at all
    alice, _ = join(server, "alice")
    said(alice, 2)
    _, welcome = rejoin(server, "bob", since=0)
    assert (welcome["history"], welcome["gap"]) == ([], True)


def test_since_gives_at_most_the_newest_thousand_and_a_gap(start_server: Any) -> None:
    chat = start_server(rate=0, byte_rate=0)  # a quick burst, not paced
    alice, _ = join(chat, "alice")
    for number in range(1, 1006):  # acks read in one go at the end: quicker than one by one
        alice.send_json(say(f"m{number}"))
    for _ in range(1005):
        alice.expect("ack")
    _, welcome = rejoin(chat, "bob", since=0)
    assert len(welcome["history"]) == 1000
    assert welcome["history"][0]["text"] == "m6"
    assert welcome["gap"] is True


def test_a_resume_cut_to_fit_the_send_buffer_is_a_gap(start_server: Any) -> None:
    server = start_server(outgoing_limit=16 * 1024, rate=0, byte_rate=0)
    alice, _ = join(server, "alice")
    for number in range(40):
        alice.send_json(say(f"{number:04} " + "x" * 995))
    for _ in range(40):
        alice.expect("ack")
    _, welcome = rejoin(server, "bob", since=0)
    assert 0 < len(welcome["history"]) < 40
    assert welcome["history"][-1]["seq"] == 40  # the newest are kept
    assert welcome["gap"] is True
    _, fresh = join(server, "carol")  # not resuming: the last messages, no gap to speak of
    assert fresh["gap"] is False


# --- exactly once ------------------------------------------------------------------------------


def test_a_resent_id_is_not_delivered_again_and_gets_the_first_ack(chat: RunningServer) -> None:
    alice, bob = members(chat, "alice", "bob")
    alice.send_json(say("once", "x1"))
    first = alice.expect("ack")
    assert bob.expect("message")["text"] == "once"
    alice.send_json(say("once, whatever I say now", "x1"))
    assert alice.expect("ack") == first
    sync(bob)  # nothing was delivered the second time
    alice.send_json(say("twice", "x2"))
    assert alice.expect("ack")["seq"] == first["seq"] + 1


def test_a_refused_say_does_not_use_up_its_id(chat: RunningServer) -> None:
    alice, bob = members(chat, "alice", "bob")
    alice.send_json(say("   ", "x1"))
    expect_error(alice, "empty_text", "x1")
    alice.send_json(say("now with words", "x1"))
    assert alice.expect("ack")["id"] == "x1"
    assert bob.expect("message")["text"] == "now with words"


def test_ids_are_the_members_own(chat: RunningServer) -> None:
    alice, bob = members(chat, "alice", "bob")
    alice.send_json(say("from alice", "x1"))
    alice.expect("ack")
    bob.expect("message")
    bob.send_json(say("from bob", "x1"))
    assert bob.expect("ack")["seq"] == 2
    assert alice.expect("message")["text"] == "from bob"


def test_an_id_stays_the_members_after_a_rename(chat: RunningServer) -> None:
    alice, bob = members(chat, "alice", "bob")
    alice.send_json(say("hi", "x1"))
    first = alice.expect("ack")
    alice.send_json({"type": "nick", "name": "alicia"})
    alice.expect("renamed")
    alice.send_json(say("hi", "x1"))
    assert alice.expect("ack") == first
    bob.expect("message")
    bob.expect("renamed")
    sync(bob)


def test_an_id_is_remembered_across_a_reconnect_with_the_token(chat: RunningServer) -> None:
    alice, welcome = join(chat, "alice")
    bob, _ = join(chat, "bob")
    alice.expect("joined")
    alice.send_json(say("before the drop", "x1"))
    first = alice.expect("ack")
    alice.close()  # the server notices: alice left, her name is free
    assert next_of(bob, "left")["reason"] == "disconnected"
    again, _ = rejoin(chat, "alice", token=welcome["token"], since=first["seq"])
    again.send_json(say("before the drop", "x1"))
    assert again.expect("ack") == first
    assert bob.expect("joined")["name"] == "alice"
    sync(bob)
    stranger, _ = rejoin(chat, "mallory")  # without the token: someone else's ids
    stranger.send_json(say("mine", "x1"))
    assert stranger.expect("ack")["seq"] == first["seq"] + 1


# --- taking a name back --------------------------------------------------------------------------


def test_the_token_takes_the_name_back_from_a_live_connection(chat: RunningServer) -> None:
    frozen, welcome = join(chat, "alice")
    bob, _ = join(chat, "bob")
    again, taken = rejoin(chat, "Alice", token=welcome["token"])
    assert taken["name"] == "Alice"
    assert taken["members"] == 2
    assert taken["token"] != welcome["token"]
    lines = expect_closed(frozen)
    assert any('"type":"shutdown"' in line and '"reason":"replaced"' in line for line in lines)
    left = bob.expect("left")
    assert (left["name"], left["reason"], left["members"]) == ("alice", "replaced", 1)
    joined = bob.expect("joined")
    assert (joined["name"], joined["members"]) == ("Alice", 2)
    again.send_json(say("back"))
    assert bob.expect("message")["from"] == "Alice"


def test_a_wrong_token_is_name_taken_and_changes_nothing(chat: RunningServer) -> None:
    alice, welcome = join(chat, "alice")
    client = chat.connect()
    client.read_line()
    client.send_json(hello("alice", token=welcome["token"][:-1] + "?"))
    expect_error(client, "name_taken")
    sync(alice)  # still here, nobody left


def test_a_token_for_a_name_nobody_holds_is_ignored(chat: RunningServer) -> None:
    _, welcome = join(chat, "alice")
    _, other = rejoin(chat, "bob", token=welcome["token"])
    assert other["name"] == "bob"
    assert other["members"] == 2


def test_an_old_token_no_longer_takes_the_name(chat: RunningServer) -> None:
    _, welcome = join(chat, "alice")
    again, _ = rejoin(chat, "alice", token=welcome["token"])
    client = chat.connect()
    client.read_line()
    client.send_json(hello("alice", token=welcome["token"]))  # the first connection's
    expect_error(client, "name_taken")
    sync(again)


def test_a_plain_member_sees_the_replacement(chat: RunningServer) -> None:
    _, welcome = join(chat, "alice")
    carol = chat.join_plain("carol")
    rejoin(chat, "alice", token=welcome["token"])
    plain_until(carol, r"^\* alice reconnected \(1 member online\)$")
    plain_until(carol, r"^\* alice joined \(2 members online\)$")


def test_a_member_cannot_take_a_name_over_with_a_second_hello(chat: RunningServer) -> None:
    alice, welcome = join(chat, "alice")
    bob, _ = join(chat, "bob")
    alice.expect("joined")
    bob.send_json(hello("alice", token=welcome["token"]))
    expect_error(bob, "already_joined")
    alice.send_json(hello("alice", token=welcome["token"]))  # its own name, its own token
    expect_error(alice, "already_joined")
    sync(alice)
    sync(bob)


def test_pages_and_results_are_cut_to_the_send_buffer_newest_first(start_server: Any) -> None:
    """As a welcome's history is: a member asking for 500 long messages gets what its send
    buffer holds, the newest, and `more` says older ones exist (its next page asks for them)."""
    limit = 16 * 1024
    server = start_server(outgoing_limit=limit, rate=1e6, burst=10**6, byte_rate=0)
    alice, _ = join(server, "alice")
    for n in range(40):
        alice.send_json(say(f"long {n} " + "😀" * 1000, str(n)))
    for _ in range(40):
        alice.expect("ack")
    alice.send_json({"type": "history", "limit": 500})
    page = alice.expect("history")
    seqs = [message["seq"] for message in page["messages"]]
    assert 1 <= len(seqs) < 40 and seqs == list(range(41 - len(seqs), 41)) and page["more"]
    alice.send_json({"type": "search", "text": "long", "limit": 200})
    found = [message["seq"] for message in alice.expect("results")["messages"]]
    assert 1 <= len(found) < 40 and found == list(range(40, 40 - len(found), -1))
