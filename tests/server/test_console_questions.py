"""The operator's console in process: the ban's question, Tab's candidates, and the refusals'
counts in the log (tcpchat.server.moderation, .terminal, .refusals), against a real server on
127.0.0.1 where one is needed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from support.chat import expect_closed, join, next_of, sync
from support.process import python_prints
from support.running import RunningServer

from tcpchat.server import moderation
from tcpchat.server.refusals import MAX_TELLING, Refusals
from tcpchat.server.terminal import OperatorCompleter


def completions(server: RunningServer, typed: str) -> list[str]:
    """What Tab offers after `typed`: each completed line."""
    assert server.server is not None
    completer = OperatorCompleter(server.server)
    document = Document(typed)

    def offered() -> list[str]:
        found = completer.get_completions(document, CompleteEvent(completion_requested=True))
        return [typed[: len(typed) + c.start_position] + c.text for c in found]

    return server.call(offered)


def test_ban_of_a_member_asks_first_when_others_share_its_address(chat: RunningServer) -> None:
    assert chat.server is not None
    server = chat.server
    alice, _ = join(chat, "alice")
    bob, _ = join(chat, "bob")
    alice.expect("joined")
    assert chat.call(lambda: moderation.question(server, "/ban 127.0.0.1")) is None
    assert chat.call(lambda: moderation.question(server, "/ban carol")) is None
    assert chat.call(lambda: moderation.question(server, "/ban bob -1")) is None  # refused anyway

    question = chat.call(lambda: moderation.question(server, "/BAN Bob 5"))
    assert question is not None
    assert question.said == (
        "This bans 127.0.0.1 for 5 minutes and removes alice, bob (2 connections)."
    )
    assert question.ask == "Ban and remove all 2? [y/N] "
    assert question.no == "Nobody was banned."
    sync(alice)  # asking did nothing
    assert chat.call(question.carry_out) == "Banned 127.0.0.1 for 5 minutes; removed alice, bob."
    expect_closed(alice)
    expect_closed(bob)


@pytest.mark.slow
def test_in_a_cluster_the_question_says_the_other_processes_close_theirs_too(cluster) -> None:
    pytest.importorskip("redis", reason="the redis package is not installed")
    first, second = cluster(2)
    assert first.server is not None
    server = first.server
    alice, bob, carol = first.join("alice"), first.join("bob"), second.join("carol")
    question = first.call(lambda: moderation.question(server, "/ban bob"))
    assert question is not None
    assert question.said == (
        "This bans 127.0.0.1 until restart and removes alice, bob (2 connections). "
        "Connections from there to the cluster's other processes are closed too."
    )
    assert first.call(question.carry_out).startswith("Banned 127.0.0.1 until the server")
    for member in (alice, bob, carol):
        next_of(member, "shutdown")


def test_tab_offers_commands_names_and_banned_addresses(chat: RunningServer) -> None:
    join(chat, "alice")
    join(chat, "Albert")
    join(chat, "bob")
    assert completions(chat, "/") == [f"{name} " for name in moderation.command_names()]
    assert completions(chat, "/BA") == ["/ban ", "/bans "]
    assert completions(chat, "/kick al") == ["/kick Albert ", "/kick alice "]
    assert completions(chat, "/ban B") == ["/ban bob "]
    assert completions(chat, "/kick bob spam b") == []  # the reason is free text
    assert completions(chat, "/say thanks b") == ["/say thanks bob "]
    assert completions(chat, "/who b") == []
    assert chat.server is not None
    server = chat.server
    chat.call(lambda: server.guard.ban("192.0.2.7", None))
    assert completions(chat, "/unban 19") == ["/unban 192.0.2.7 "]


def test_refusals_beyond_one_an_address_a_minute_are_counted_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = Refusals()
    with caplog.at_level(logging.INFO, logger="tcpchat.server"):
        for port in range(3):
            refusals.note("192.0.2.1", f"192.0.2.1:{port}", "Your address is banned.")
        refusals.note("192.0.2.2", "192.0.2.2:9", "The server is full.")
        refusals.telling = MAX_TELLING
        assert not refusals.may_tell("192.0.2.3", tls=False)
        assert [r.getMessage() for r in caplog.records] == [
            "refused 192.0.2.1:0: Your address is banned.",
            "refused 192.0.2.2:9: The server is full.",
        ]
        caplog.clear()
        refusals.summarise()
        assert [r.getMessage() for r in caplog.records] == [
            "refused 2 more connections from 192.0.2.1, not logged one by one "
            "(the last: Your address is banned.)",
            "refused 1 connection without telling them why (a flood of refused connections)",
        ]
        caplog.clear()
        refusals.summarise()  # counted once
        assert caplog.records == []


@pytest.mark.slow
def test_a_server_without_a_terminal_loads_no_prompt_toolkit(tmp_path: Path) -> None:
    """`serve` under a service manager starts as fast as ever: the operator's line, and
    prompt_toolkit with it, is imported only when a person sits at the terminal."""
    code = (
        "import sys, tcpchat.cli.serve, tcpchat.server.run\n"
        "print(sorted(m for m in sys.modules if m.startswith('prompt_toolkit')))\n"
    )
    assert python_prints(code, tmp_path).strip() == "[]"
