"""`tcpchat serve` keeps its history in SQLite: the options, where the file goes, a file it cannot
use, and a real server process killed mid-burst that loses no acknowledged message."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support import TIMEOUT
from support.process import Process, clean_env, free_port
from support.wire import LineClient

from tcpchat.cli import main
from tcpchat.defaults import DEFAULT_PORT
from tcpchat.server.store import Store, default_db_path
from tcpchat.server.store.database import MAX_SEQ


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """The `ServerConfig` of each `serve` invoked (no server runs)."""
    monkeypatch.setenv("TCPCHAT_CONFIG_DIR", str(tmp_path / "config"))
    seen: list[Any] = []
    monkeypatch.setattr("tcpchat.server.run.run_server", lambda config, **_: seen.append(config))
    return seen


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["serve", *args], prog_name="tcpchat")


def test_serve_keeps_history_in_a_file_per_address_and_port_by_default(
    configs: list[Any], tmp_path: Path
) -> None:
    assert invoke().exit_code == 0
    assert invoke("--host", "::1", "--port", "4000").exit_code == 0
    assert invoke("--db", str(tmp_path / "chat.db"), "--keep-days", "0").exit_code == 0
    assert invoke("--memory", "--keep-messages", "10").exit_code == 0
    assert invoke("--port", "0").exit_code == 0
    default, other, chosen, memory, random_port = configs
    assert default.db == default_db_path(None, DEFAULT_PORT)
    assert default.db.is_relative_to(tmp_path / "config")
    assert other.db == default_db_path("::1", 4000) != default.db
    assert (default.keep_days, default.keep_messages) == (365, 1_000_000)
    assert (chosen.db, chosen.keep_days) == (tmp_path / "chat.db", 0)
    assert (memory.db, memory.keep_messages) == (None, 10)
    assert random_port.db is None  # a port nobody finds again keeps nothing


def test_db_and_memory_together_are_refused(configs: list[Any], tmp_path: Path) -> None:
    result = invoke("--memory", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and "--db or --memory" in result.output
    assert configs == []


def serve(tmp_path: Path, db: Path, port: int, *extra: str) -> Process:
    where = ["--host", "127.0.0.1", "--port", str(port), "--db", str(db)]
    unlimited = ["--rate", "0", "--byte-rate", "0"]
    return Process(
        [sys.executable, "-m", "tcpchat", "serve", *where, *unlimited, *extra], clean_env(tmp_path)
    )


@pytest.mark.slow
def test_a_file_that_is_not_a_database_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "broken.sqlite3"
    db.write_bytes(b"not a database\n" * 1000)
    process = serve(tmp_path, db, free_port())
    try:
        assert process.wait(3 * TIMEOUT) == 1
    finally:
        process.stop()
    (line,) = [line for line in process.err if line.strip()]
    assert line.startswith(f"Error: The message store {db} cannot be opened: ")


@pytest.mark.slow
def test_the_welcome_says_where_history_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    process = serve(tmp_path, db, free_port(), "--keep-days", "30")
    try:
        line = process.wait_for_line(lambda line: "History is kept" in line, 3 * TIMEOUT)
    finally:
        process.stop()
    assert line.strip() == f"History is kept in {db} (30 days, at most 1,000,000 messages)."


def joined(port: int, name: str) -> LineClient:
    client = LineClient("127.0.0.1", port, TIMEOUT)
    client.read_line()  # the banner
    client.send_json({"type": "hello", "name": name, "version": 1})
    assert client.expect("welcome")["name"] == name
    return client


@pytest.mark.slow
def test_every_acked_message_survives_a_server_killed_mid_burst(tmp_path: Path) -> None:
    db, port = tmp_path / "h.sqlite3", free_port()
    server = serve(tmp_path, db, port)
    acked: list[tuple[int, str]] = []  # (seq, text) of every ack the client got, in order
    try:
        server.wait_for_line(lambda line: "Press Ctrl-C" in line, 3 * TIMEOUT)
        client = joined(port, "alice")
        burst = b"".join(
            json.dumps({"type": "say", "text": f"m{n}", "id": f"m{n}"}).encode() + b"\n"
            for n in range(20_000)
        )
        for event in _acks_until_killed(client, burst, server, 2000):
            acked.append((event["seq"], event["id"]))
    finally:
        server.stop()
    assert 2000 <= len(acked) < 20_000, "killed mid-burst"
    assert [seq for seq, _ in acked] == list(range(1, len(acked) + 1))

    store = Store(db)
    rows = store.reader.execute(f"SELECT id & {MAX_SEQ}, text FROM messages ORDER BY id").fetchall()
    store.close()
    stored = dict(rows)
    assert all(stored.get(seq) == text for seq, text in acked), "an acked message is lost"
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))

    again = serve(tmp_path, db, port)
    try:
        again.wait_for_line(lambda line: "Press Ctrl-C" in line, 3 * TIMEOUT)
        client = joined(port, "bob")
        client.send_json({"type": "say", "text": "after", "id": "after"})
        assert client.expect("ack")["seq"] == len(rows) + 1  # no seq is given out twice
        client.close()
    finally:
        again.stop()


def _acks_until_killed(
    client: LineClient, burst: bytes, server: Process, kill_after: int
) -> Iterator[dict[str, Any]]:
    """Send `burst` while reading: each `ack`, until the server, SIGKILLed after `kill_after`
    of them, is gone."""
    sender = threading.Thread(target=_send_until_cut, args=(client.sock, burst), daemon=True)
    sender.start()
    count = 0
    while True:
        try:
            event = client.read_json()
        except AssertionError:  # the connection ended: the server is gone
            break
        if event["type"] == "ack":
            yield event
            count += 1
            if count == kill_after:
                server.popen.send_signal(signal.SIGKILL)
    sender.join(TIMEOUT)
    client.close()


def _send_until_cut(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server was killed


# Long enough that the server is still taking it when the kill lands (5,000 were all acknowledged
# before it once the server got faster).
BURST = 20_000


@pytest.mark.slow
def test_ids_resent_to_a_restarted_server_are_kept_once(tmp_path: Path) -> None:
    """A client that resends every id it sent, with its token, to the server restarted after a
    SIGKILL mid-burst gets each id's message kept exactly once, acked or not before the kill."""
    db, port = tmp_path / "h.sqlite3", free_port()
    server = serve(tmp_path, db, port)
    lines = [
        json.dumps({"type": "say", "text": f"m{n}", "id": f"m{n}"}).encode() + b"\n"
        for n in range(BURST)
    ]
    acked: dict[str, int] = {}
    try:
        server.wait_for_line(lambda line: "Press Ctrl-C" in line, 3 * TIMEOUT)
        client = LineClient("127.0.0.1", port, TIMEOUT)
        client.read_line()  # the banner
        client.send_json({"type": "hello", "name": "alice", "version": 1})
        token = client.expect("welcome")["token"]
        for event in _acks_until_killed(client, b"".join(lines), server, 200):
            acked[event["id"]] = event["seq"]
    finally:
        server.stop()
    assert 200 <= len(acked) < BURST, "killed mid-burst"

    again = serve(tmp_path, db, port)
    try:
        again.wait_for_line(lambda line: "Press Ctrl-C" in line, 3 * TIMEOUT)
        client = LineClient("127.0.0.1", port, TIMEOUT)
        client.read_line()
        client.send_json({"type": "hello", "name": "alice", "version": 1, "token": token})
        client.expect("welcome")
        client.sock.sendall(b"".join(lines))
        answers: dict[str, int] = {}
        while len(answers) < len(lines):
            event = client.expect("ack")
            answers[event["id"]] = event["seq"]
        client.close()
    finally:
        again.stop()
    assert all(answers[request] == seq for request, seq in acked.items()), "an ack changed"
    store = Store(db)
    texts = [row[0] for row in store.reader.execute("SELECT text FROM messages ORDER BY id")]
    store.close()
    assert sorted(texts) == sorted(f"m{n}" for n in range(BURST)), "a message is missing or twice"


def test_a_cluster_keeps_no_history_file_of_its_own(configs: list[Any], tmp_path: Path) -> None:
    assert invoke("--cluster", "redis://127.0.0.1:6379/0").exit_code == 0
    assert configs[-1].db is None and configs[-1].cluster == "redis://127.0.0.1:6379/0"
    refused = invoke("--cluster", "redis://127.0.0.1:6379/0", "--db", str(tmp_path / "x.db"))
    assert refused.exit_code == 2 and "--db or --cluster" in refused.output
