"""Store benchmark (not a test): how fast a history file with a million messages opens and answers.

Fills a file with MESSAGES messages of a few random words each (a rare word every 100,000th),
committed in batches as a busy server would, then times, each as the best of REPEAT runs:
opening it (schema check, marks, the welcome's recent messages), the newest `history` page, a
page deep in the past, a resume after the newest 1,000 and after half the file (`gap`), a search
for the rare word and for a common one (with FTS5 and with the fallback), and a commit of one
message and of a turn's 100.

    python tests/benchmarks/bench_store.py --messages 1000000 --path /tmp/history.sqlite3

An existing file of at least that many messages is reused, so only the first run pays the fill.

Measured on 2026-12-03 (2 shared cores, Python 3.11.7, SQLite 3.40.1, a warm page cache), a
million messages, best of 5: filled in 12.5 s (128 MiB, search index included); open 1.2 ms,
and the start's read of the ids sent lately (the newest 100,000 messages) 14 ms; newest history
page of 50 0.1 ms, a page of 500 from the middle 1.1 ms; resume of 1,000 2.1 ms (with or
without a gap); search with FTS5 0.4 ms for the rare word (10 found) and 0.6 ms for two common
ones (20 found), each including starting an event loop; with the fallback 780 ms for the rare
word (it reads every message) and 1 ms for the common ones; append and commit of 1 message
1.1 ms, of 100 4 ms (one fsync each).  A file of the first layout with a million messages is
brought to this one in 1.4 s at its first open, and indexed in the background in 3.6 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tcpchat.server.store import Store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RARE = "quetzalcoatl"


def fill(path: Path, messages: int, batch: int = 10_000) -> float:
    store = Store(path)
    log = store.room("lobby")
    have = log.seq
    # Five thousand words, and a few everyday ones that one message in twenty holds.
    vocabulary = [f"w{n}" for n in range(5000)] + ["the"] * 300 + ["hello", "lunch"] * 100
    chooser = random.Random(12)
    started = time.perf_counter()

    async def go() -> None:
        for n in range(have, messages):
            words = chooser.choices(vocabulary, k=chooser.randint(3, 15))
            if n % 100_000 == 50_000:
                words.append(RARE)
            log.append(f"user{n % 50}", " ".join(words), T0 + timedelta(seconds=n))
            if n % batch == batch - 1:
                await store.commit()
        await store.commit()
        await store.index_all()

    asyncio.run(go())
    store.close()
    return time.perf_counter() - started


def best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def report(label: str, seconds: float, note: str = "") -> None:
    print(f"{label:<44} {seconds * 1000:9.2f} ms  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--path", type=Path, default=Path("/tmp/tcpchat-bench-store.sqlite3"))
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    filled = fill(options.path, options.messages)
    print(f"filled to {options.messages:,} messages in {filled:.1f} s")
    size = sum(p.stat().st_size for p in options.path.parent.glob(options.path.name + "*"))
    print(f"file size {size / 2**20:.0f} MiB")

    def opened() -> Store:
        store = Store(options.path)
        store.room("lobby", recent=50)
        return store

    seconds, store = best(options.repeat, opened)
    report("open (and the welcome's 50 recent)", seconds)
    log = store.room("lobby")
    seconds, sent = best(options.repeat, log.sent_lately)
    report("ids sent lately (newest 100,000 read)", seconds, f"{len(sent)} found")
    newest = log.seq
    seconds, page = best(options.repeat, lambda: log.history(limit=50))
    report("history: newest 50", seconds, f"more={page[1]}")
    seconds, page = best(options.repeat, lambda: log.history(newest // 2, limit=500))
    report("history: 500 from the middle", seconds)
    seconds, found = best(options.repeat, lambda: log.since(newest - 1000))
    report("resume after newest-1000 (1,000 messages)", seconds, f"gap={found[1]}")
    seconds, found = best(options.repeat, lambda: log.since(newest // 2))
    report("resume after half the file (1,000, gap)", seconds, f"gap={found[1]}")
    for fts in (True, False):
        searching = store if fts else Store(options.path, fts=False)
        searched = searching.room("lobby")
        kind = "FTS5" if fts else "fallback"
        seconds, found = best(
            options.repeat, lambda s=searched: asyncio.run(s.search(RARE, limit=20))
        )
        report(f"search rare word ({kind})", seconds, f"{len(found)} found")
        seconds, found = best(
            options.repeat, lambda s=searched: asyncio.run(s.search("hello lunch", limit=20))
        )
        report(f"search two common words ({kind})", seconds, f"{len(found)} found")
        if not fts:
            searching.close()

    async def commits() -> None:
        for count in (1, 100):
            times = []
            for _ in range(options.repeat):
                started = time.perf_counter()
                for _ in range(count):
                    log.append("bench", "one more", datetime.now(timezone.utc))
                await store.commit()
                times.append(time.perf_counter() - started)
            report(f"append + commit of {count} (one fsync)", min(times))

    asyncio.run(commits())
    store.close()


if __name__ == "__main__":
    main()
