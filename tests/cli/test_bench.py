"""`tcpchat bench` against live servers on 127.0.0.1, in small sizes; and its own bookkeeping.

The scenarios run through the real command (Click's runner, in this process) against the real
server in its thread (conftest); the IRC dialect runs against a real ngircd when one is installed
(`.ci/run` installs it).  The counting of loss, reordering and `seq` gaps is checked on crafted
lines, since a correct server never shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import TIMEOUT
from support.process import free_port
from support.redis import RedisServer, serving_processes
from support.running import RunningServer

from tcpchat.bench import (
    BenchClient,
    IrcDialect,
    Tally,
    TcpchatDialect,
    message_text,
    server_cpu_seconds,
    server_rss_kib,
)
from tcpchat.bench.report import total
from tcpchat.cli import main


def bench(*args: str) -> Result:
    return CliRunner().invoke(main, ["bench", *args], prog_name="tcpchat")


def bench_json(server_port: int, *args: str) -> dict[str, Any]:
    result = bench(
        "127.0.0.1", "--port", str(server_port), "--json", "--timeout", str(6 * TIMEOUT), *args
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


@pytest.fixture
def fast(start_server) -> RunningServer:
    """A server that does not pace its senders (as for benchmarks)."""
    return start_server(rate=0, history=0)


def test_fanout_counts_every_delivery_in_order(fast: RunningServer) -> None:
    report = bench_json(
        fast.port, "--clients", "4", "--messages", "60", "--window", "5", "--size", "40"
    )
    assert report["scenario"] == "fanout" and report["protocol"] == "tcpchat"
    assert report["expected_deliveries"] == report["deliveries"] == 240
    assert (report["lost"], report["reordered"], report["duplicates"], report["seq_gaps"]) == (
        0,
        0,
        0,
        0,
    )
    assert set(report["latency_ms"]) == {"p50", "p99", "max"}
    assert (
        0
        <= report["latency_ms"]["p50"]
        <= report["latency_ms"]["p99"]
        <= report["latency_ms"]["max"]
    )
    assert report["deliveries_per_second"] > 0 and not report["timed_out"]


def test_browser_members_over_websocket_are_measured_the_same_way(start_server) -> None:
    server = start_server(rate=0, history=0, web_port=0)
    web_port = server.call(lambda: server.server.web_ports[0])
    for scenario in ("fanout", "many"):
        report = bench_json(
            web_port, "--protocol", "ws", "--scenario", scenario, "--clients", "4",
            "--messages", "30", "--window", "5",
        )  # fmt: skip
        assert report["deliveries"] == report["expected_deliveries"] > 0
        assert (report["lost"], report["reordered"], report["seq_gaps"]) == (0, 0, 0)


def test_many_members_sending_see_seq_without_gaps(fast: RunningServer) -> None:
    report = bench_json(fast.port, "--scenario", "many", "--clients", "5", "--messages", "12")
    assert report["deliveries"] == 5 * 12 * 4
    assert report["seq_gaps"] == 0 and report["lost"] == 0


def test_with_ids_every_say_carries_its_own_and_each_is_acknowledged_once(
    fast: RunningServer,
) -> None:
    """`--ids` sends as `tcpchat join` does: the server remembers every id (none twice), and
    each comes back in exactly one ack."""
    remembered = 0
    for scenario, sent in (("fanout", 30), ("many", 4 * 30)):
        report = bench_json(
            fast.port, "--ids", "--scenario", scenario, "--clients", "4", "--messages", "30",
            "--window", "5",
        )  # fmt: skip
        assert report["ids"] is True and report["deliveries"] == report["expected_deliveries"]
        assert (report["acknowledged"], report["unacknowledged"]) == (sent, 0)
        assert (report["duplicates"], report["lost"], report["seq_gaps"]) == (0, 0, 0)
        remembered += sent
        assert fast.call(lambda: len(fast.server.lobby.sent)) == remembered
    without = bench_json(fast.port, "--clients", "2", "--messages", "5")
    assert (without["ids"], without["acknowledged"]) == (False, 0)
    assert fast.call(lambda: len(fast.server.lobby.sent)) == remembered


def test_ids_are_refused_over_irc_in_one_sentence() -> None:
    result = bench("127.0.0.1", "--protocol", "irc", "--ids")
    assert result.exit_code == 2
    assert "--ids needs tcpchat's protocol" in result.output and "Traceback" not in result.output


def test_capacity_reports_joins_and_the_server_memory(fast: RunningServer) -> None:
    report = bench_json(
        fast.port, "--scenario", "capacity", "--clients", "60", "--server-pid", str(os.getpid())
    )
    assert report["clients"] == 60 and report["join_seconds"] > 0
    if sys.platform.startswith("linux"):
        assert report["server_rss_kib"] > 0 and report["rss_per_member_kib"] is not None
        assert report["server_cpu_seconds"] is not None


def test_churn_leaves_the_server_as_it_found_it(fast: RunningServer) -> None:
    report = bench_json(fast.port, "--scenario", "churn", "--clients", "15", "--rounds", "3")
    assert report["clients"] == 45 and not report["timed_out"]
    deadline = time.monotonic() + TIMEOUT
    while fast.call(lambda: len(fast.server.connections)):
        assert time.monotonic() < deadline, "connections of the churn were never let go"


def test_the_text_report_reads_as_a_summary(fast: RunningServer) -> None:
    result = bench(
        "127.0.0.1", "-p", str(fast.port), "-c", "2", "-m", "10", "--server-pid", str(os.getpid())
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"fanout on 127.0.0.1:{fast.port} (tcpchat): 2 receivers, 10 messages of 100 characters, window 50"
    )
    assert any(line.strip().startswith("deliveries  20 of 20 in") for line in lines)
    assert any("lost 0, reordered 0, duplicates 0, seq gaps 0" in line for line in lines)


# --- several server ports ------------------------------------------------------------------------
# Until the servers share one room (`serve --cluster`), a message reaches only the members on its
# own port; so the spreading is checked with idle members and churn, against limits per server
# that only a round-robin spread keeps within.


def test_capacity_spreads_members_round_robin_over_the_ports(start_server) -> None:
    first = start_server(rate=0, history=0, max_clients=4)  # members 0, 2, 4, 6
    second = start_server(rate=0, history=0, max_clients=3)  # members 1, 3, 5
    report = bench_json(
        first.port, "--port", str(second.port), "--scenario", "capacity", "--clients", "7"
    )
    assert report["clients"] == 7 and report["ports"] == [first.port, second.port]
    assert report["server"] == f"127.0.0.1:{first.port},{second.port}"


def test_browser_members_spread_over_the_web_ports_the_same_way(start_server) -> None:
    servers = [start_server(rate=0, history=0, web_port=0, max_clients=2) for _ in range(2)]
    ports = [server.call(lambda s=server: s.server.web_ports[0]) for server in servers]
    report = bench_json(
        ports[0], "--port", str(ports[1]), "--protocol", "ws", "--scenario", "capacity",
        "--clients", "4",
    )  # fmt: skip
    assert report["clients"] == 4 and report["ports"] == ports


def test_churn_spreads_each_round_over_the_ports(start_server) -> None:
    # Each server lets 6 connections in at once and then about one every 10 seconds.
    servers = [start_server(rate=0, history=0, connect_rate=6) for _ in range(2)]
    report = bench_json(
        servers[0].port, "--port", str(servers[1].port), "--scenario", "churn",
        "--clients", "4", "--rounds", "3",
    )  # fmt: skip
    assert report["clients"] == 12 and not report["timed_out"]
    deadline = time.monotonic() + TIMEOUT
    while any(server.call(lambda s=server: len(s.server.connections)) for server in servers):
        assert time.monotonic() < deadline, "connections of the churn were never let go"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_several_server_pids_add_up(fast: RunningServer) -> None:
    pid = os.getpid()  # the server runs in this process: given twice, it counts twice
    report = bench_json(
        fast.port, "--scenario", "capacity", "--clients", "20",
        "--server-pid", str(pid), "--server-pid", str(pid),
    )  # fmt: skip
    assert report["server_pids"] == [pid, pid] and report["ports"] == [fast.port]
    assert report["server"] == f"127.0.0.1:{fast.port}"
    assert report["server_cpu_seconds"] is not None
    assert 1.5 * server_rss_kib(pid) < report["server_rss_kib"] < 2.5 * server_rss_kib(pid)  # type: ignore[operator]


def test_a_sum_over_server_pids_is_unknown_when_one_part_is() -> None:
    pid, never = os.getpid(), 2**22  # Linux gives out pids below 2**22
    assert total([pid, pid], lambda _: 1.5) == 3.0
    assert total([pid, never], lambda p: None if p == never else 7) is None
    assert total([], server_cpu_seconds) is None


def test_a_refused_port_among_several_is_named(fast: RunningServer) -> None:
    closed = free_port()
    result = bench("127.0.0.1", "-p", str(closed), "-p", str(fast.port), "-c", "2", "-m", "2")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot connect to 127.0.0.1 port {closed}: Connection refused.\n"
    )
    from_env = CliRunner().invoke(
        main, ["bench", "-c", "2", "-m", "2"], env={"TCPCHAT_BENCH_PORT": f"{closed} {fast.port}"}
    )
    assert from_env.exit_code == 1 and from_env.stderr == result.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[int], list[int]]]:
    """Two `tcpchat serve --cluster` processes sharing a room through a real Redis, their limits
    off as for a benchmark: (their ports, the pids of both and of the Redis)."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        options = ("--rate", "0", "--max-per-address", "0", "--connect-rate", "0")
        with serving_processes(redis, tmp_path, ("a", "b"), *options) as processes:
            assert redis.process is not None
            pids = [*(process.popen.pid for process, _ in processes), redis.process.pid]
            yield [port for _, port in processes], pids
    finally:
        redis.stop()


def test_fanout_and_many_across_processes_sharing_one_room(
    cluster: tuple[list[int], list[int]],
) -> None:
    ports, pids = cluster
    spread = [arg for port in ports for arg in ("--port", str(port))]
    measured = [arg for pid in pids for arg in ("--server-pid", str(pid))]
    for scenario in ("fanout", "many"):
        report = bench_json(
            ports[0], *spread[2:], *measured, "--scenario", scenario, "--clients", "4",
            "--messages", "30", "--window", "5",
        )  # fmt: skip
        assert report["ports"] == ports and report["server_pids"] == pids
        assert report["deliveries"] == report["expected_deliveries"] > 0
        assert (report["lost"], report["reordered"], report["seq_gaps"]) == (0, 0, 0)
        assert report["server_cpu_seconds"] is not None


@pytest.mark.slow
def test_a_run_that_cannot_finish_in_time_says_so_and_fails(start_server) -> None:
    paced = start_server(rate=5, burst=5, history=0)  # 5 messages a second: 200 take 40 s
    result = bench("127.0.0.1", "-p", str(paced.port), "-c", "2", "-m", "200", "--timeout", "1")
    assert result.exit_code == 1
    assert "TIMED OUT" in result.stdout
    assert result.stderr.strip() == "Error: the run timed out before everything arrived."


def test_no_server_is_one_sentence() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = bench("127.0.0.1", "-p", str(port), "-c", "2", "-m", "2")
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot connect to 127.0.0.1 port {port}: Connection refused.\n"


def test_a_refused_join_is_one_sentence(start_server) -> None:
    guarded = start_server(password="s3cret")
    result = bench("127.0.0.1", "-p", str(guarded.port), "-c", "2", "-m", "2")
    assert result.exit_code == 1
    assert result.stderr == "Error: the server refused: This server needs a password.\n"
    assert (
        bench(
            "127.0.0.1", "-p", str(guarded.port), "-c", "2", "-m", "2", "--password", "s3cret"
        ).exit_code
        == 0
    )


# --- the bookkeeping, on crafted lines -----------------------------------------------------------


def receive(dialect: Any, lines: list[bytes]) -> tuple[BenchClient, Tally]:
    """Feed `lines` to a client with no connection; what it counted."""

    async def feed() -> tuple[BenchClient, Tally]:
        tally = Tally()
        client = BenchClient("probe", dialect, tally)
        client.data_received(b"".join(line + b"\n" for line in lines))
        return client, tally

    return asyncio.run(feed())


def message_line(seq: int, sender: int, number: int) -> bytes:
    text = message_text(sender, number, 40)
    return json.dumps(
        {
            "type": "message",
            "seq": seq,
            "from": "x",
            "text": text,
            "ts": "2026-11-25T10:00:00.000Z",
        },
        separators=(",", ":"),
    ).encode()


def test_bookkeeping_counts_loss_reordering_duplicates_and_seq_gaps() -> None:
    lines = [
        message_line(1, 0, 0),
        message_line(2, 0, 1),
        message_line(4, 0, 3),  # number 2 missing, seq 3 missing
        message_line(3, 0, 2),  # number 2 late: reordered (no longer lost); seq went back
        message_line(5, 1, 0),  # another sender's numbers start at 0
    ]
    client, tally = receive(TcpchatDialect(), lines)
    assert tally.deliveries == 5 and client.from_sender == {0: 4, 1: 1}
    assert (tally.lost, tally.reordered) == (0, 1)
    assert tally.duplicates == 1 and tally.seq_gaps == 1 + 1  # 2 -> 4, then 3 -> 5
    assert len(tally.latencies_ns) == 5 and min(tally.latencies_ns) >= 0


def test_bookkeeping_takes_the_own_ack_as_a_place_in_seq_and_ignores_the_rest() -> None:
    lines = [
        b"Welcome to tcpchat on x! 1 member online. Enter your name:",
        b'{"type":"welcome","name":"probe","members":1,"names":["probe"],"server":"x","motd":null,"max_text":1024,"version":1,"history":[]}',
        message_line(1, 0, 0),
        b'{"type":"ack","id":null,"seq":2,"ts":"2026-11-25T10:00:00.000Z","delivered":3}',
        message_line(3, 0, 1),
        b'{"type":"joined","name":"y","members":2,"ts":"2026-11-25T10:00:00.000Z"}',
        # Another server's field order: parsed as JSON, counted the same.
        json.dumps(
            {"type": "message", "text": message_text(0, 2, 40), "from": "x", "ts": "t", "seq": 4}
        ).encode(),
    ]
    client, tally = receive(TcpchatDialect(), lines)
    assert client.joined.done() and client.joined.exception() is None
    assert tally.deliveries == 3 and tally.seq_gaps == 0 and tally.lost == 0


def test_bookkeeping_with_ids_counts_each_ack_once_and_those_never_come() -> None:
    async def run() -> tuple[BenchClient, Tally, list[bytes]]:
        written: list[bytes] = []
        tally = Tally()
        client = BenchClient("probe", TcpchatDialect(ids=True), tally)
        client.write = written.append  # type: ignore[method-assign]
        for number in range(3):
            client.say(message_text(0, number, 40))
        ids = [json.loads(line)["id"] for line in written]
        acks = [
            {"type": "ack", "id": ids[0], "seq": 1, "ts": "t", "delivered": 3},
            {"type": "ack", "id": ids[0], "seq": 1, "ts": "t", "delivered": 3},  # again
            {"type": "ack", "id": "never-sent", "seq": 2, "ts": "t", "delivered": 3},
            {"type": "ack", "id": ids[2], "seq": 2, "ts": "t", "delivered": 3},
        ]
        lines = (json.dumps(ack, separators=(",", ":")).encode() + b"\n" for ack in acks)
        client.data_received(b"".join(lines))
        return client, tally, written

    client, tally, written = asyncio.run(run())
    ids = [json.loads(line)["id"] for line in written]
    assert len(set(ids)) == 3 and all(json.loads(line)["type"] == "say" for line in written)
    assert tally.acknowledged == 2 and tally.duplicates == 2
    assert client.awaiting == {ids[1]}  # never acknowledged
    assert tally.seq_gaps == 0


def test_irc_dialect_registers_joins_answers_pings_and_reads_privmsg() -> None:
    written: list[bytes] = []

    class Capture:
        def write(self, data: bytes) -> None:
            written.append(data)

        def is_closing(self) -> bool:
            return False

    async def run() -> tuple[BenchClient, Tally]:
        tally = Tally()
        client = BenchClient("probe", IrcDialect("#room"), tally)
        client.transport = Capture()  # type: ignore[assignment]
        text = message_text(7, 0, 40).encode()
        client.data_received(
            b":irc.local 001 probe :Welcome\r\n"
            b"PING :irc.local\r\n"
            b":irc.local 353 probe = #room :probe\r\n:irc.local 366 probe #room :End of /NAMES list.\r\n"
            b":other!u@h PRIVMSG #room :" + text + b"\r\n"
        )
        return client, tally

    client, tally = asyncio.run(run())
    assert written == [b"JOIN #room\r\n", b"PONG :irc.local\r\n"]
    assert client.joined.done() and tally.deliveries == 1 and client.from_sender == {7: 1}
    assert IrcDialect().hello("b1") == b"NICK b1\r\nUSER b1 0 * :b1\r\n"
    assert IrcDialect("#bench").say("hi") == b"PRIVMSG #bench :hi\r\n"


# --- against a real IRC server -------------------------------------------------------------------


@pytest.fixture
def ngircd(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A real ngircd on 127.0.0.1 with its limits off; (port, pid)."""
    program = shutil.which("ngircd") or (
        "/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None
    )
    if program is None:
        pytest.skip("ngircd is not installed here (.ci/run installs it with apt-get)")
    port = free_port()
    config = tmp_path / "ngircd.conf"
    config.write_text(
        "[Global]\n\tName = bench.irc\n\tInfo = test\n\tListen = 127.0.0.1\n"
        f"\tPorts = {port}\n\tMotdPhrase = test\n"
        "[Limits]\n\tMaxConnectionsIP = 0\n\tMaxJoins = 0\n\tMaxNickLength = 30\n\tMaxPenaltyTime = 0\n"
        "[Options]\n\tDNS = no\n\tIdent = no\n\tPAM = no\n"
    )
    process = subprocess.Popen(
        [program, "-n", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 2 * TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
                break
            except OSError:
                assert process.poll() is None, "ngircd exited at start"
                assert time.monotonic() < deadline, "ngircd did not start listening"
                time.sleep(0.05)  # polling for the port, with a deadline
        yield port, process.pid
    finally:
        process.kill()
        process.wait(TIMEOUT)


def test_the_same_fanout_speaks_irc_to_ngircd(ngircd: tuple[int, int]) -> None:
    port, pid = ngircd
    report = bench_json(
        port, "--protocol", "irc", "--clients", "4", "--messages", "40", "--server-pid", str(pid)
    )
    assert report["protocol"] == "irc"
    assert report["deliveries"] == report["expected_deliveries"] == 160
    assert (report["lost"], report["reordered"]) == (0, 0)
