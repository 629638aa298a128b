"""No acknowledgement before durability: a room's deliveries held until its store has them.

With a durable log, a `say` (or the operator's announcement) is numbered at once but nothing
about it may be sent before the store has committed it.  `Holding` gathers the deliveries of a
turn's messages, and at the end of the turn commits them in one group (one transaction for the
whole turn, on the store's thread) from a task; when the commit returns, the deliveries go out
in order through the room's fan-out.  Tasks resume in the order of their commits, so members see
`seq` in order.

Everyone-broadcasts go to the members present when they are sent: a member who joined while its
message was being written did not have it in its `welcome` (which shows durable messages only)
and gets it live.  One who joined after it became durable, but before it was sent, had it in its
`welcome` and is left out, so that nobody sees a message twice.

When the store fails, the held messages are void (the store gives their `seq` out again): each
sender gets `unavailable` and its id is forgotten, so that a resend is a new message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from tcpchat.protocol import Ack, Message
from tcpchat.protocol.quick import quick_init
from tcpchat.server.config import ServerConfig
from tcpchat.server.fanout import Fanout
from tcpchat.server.messages import LogUnavailable, MessageLog
from tcpchat.server.room import Delivery, Handle, unavailable
from tcpchat.server.store import Store

log = logging.getLogger("tcpchat.server")

PRUNE_EVERY = 3600.0  # seconds between retention runs


class DurableLog(MessageLog, Protocol):
    """A `MessageLog` whose appended messages are kept for good only once `commit` returns."""

    async def commit(self) -> None:
        """Return once every message appended so far is durable; raise `LogUnavailable` (and
        void them, `seq` going back to `durable_seq`) if they cannot be."""


class StoreHealth:
    """Tells the operator once that the store fails, and once that it works again."""

    def __init__(self) -> None:
        self.failing = False

    def failed(self, error: BaseException) -> None:
        if not self.failing:
            self.failing = True
            log.warning(
                "%s Messages are refused until it can be written again (not repeated).", error
            )

    def worked(self) -> None:
        if self.failing:
            self.failing = False
            log.info("The message store can be written again; messages are accepted.")


@quick_init
@dataclass(frozen=True, slots=True)
class Held:
    """One `say` (or announcement) waiting for its commit: its deliveries, and who sent it
    with which id (None for the operator)."""

    deliveries: Sequence[Delivery]
    sender: Handle | None = None
    request_id: str | None = None


class Holding:
    """One room's deliveries that wait for its durable log's commit."""

    def __init__(self, fanout: Fanout, health: StoreHealth) -> None:
        self.fanout = fanout
        self.log = fanout.room.log
        self.health = health
        # The turn's held messages, each with its sender's lineage (see `tcpchat.server.once`).
        self._batch: list[tuple[Held, int]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        # While anything is held: the `welcome.seq` of each member who joined meanwhile.
        self._joined_at: dict[Handle, int] = {}

    def send(self, held: Held) -> None:
        """Send `held`'s deliveries now, or once its message is durable."""
        if not self.must_hold(held.deliveries):
            self.fanout.dispatch(held.deliveries)
            return
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._end_turn)
        sender = held.sender
        lineage = 0 if sender is None else self.fanout.room.lineage_of(sender)
        self._batch.append((held, lineage))

    def must_hold(self, deliveries: Sequence[Delivery]) -> bool:
        """Whether `deliveries` tell of a message not yet durable (a new one, or the ack of a
        resent id whose message is still being written); never with a log in memory."""
        durable = self.log.durable_seq
        for delivery in deliveries:
            event = delivery.event
            if isinstance(event, Message) and event.seq > durable:
                return True
            if isinstance(event, Ack) and event.seq is not None and event.seq > durable:
                return True
        return False

    def joined(self, member: Handle, seq: int) -> None:
        """`member` joined with `welcome.seq` `seq`: it has every message up to that."""
        if self._batch or self.tasks:
            self._joined_at[member] = seq

    async def settle(self) -> None:
        """Wait for the commits under way (at shutdown, so that their acks go out)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks))

    def _end_turn(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self.tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sending committed messages failed", exc_info=task.exception())
        if not self.tasks and not self._batch:
            self._joined_at.clear()

    async def _commit(self, batch: list[tuple[Held, int]]) -> None:
        top = max(_seq_of(held) for held, _ in batch)
        try:
            await cast(DurableLog, self.log).commit()
            if self.log.durable_seq < top:  # voided by a failure that ended before we asked
                raise LogUnavailable("The message store lost these messages.")
        except LogUnavailable as error:
            self.health.failed(error)
            self._refuse(batch)
            return
        self.health.worked()
        for held, _ in batch:
            self.fanout.dispatch(self._present(held.deliveries))

    def _present(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """`deliveries` for the members here now: none to one who left, and a message to
        everyone but those whose `welcome` had it already."""
        room = self.fanout.room
        sent = []
        for delivery in deliveries:
            event = delivery.event
            if not delivery.everyone:
                if all(room.is_member(handle) for handle in delivery.to):
                    sent.append(delivery)  # the common case: the sender is still here
                    continue
                to = [handle for handle in delivery.to if room.is_member(handle)]
                if to:
                    sent.append(Delivery(event, to))
                continue
            if not self._joined_at:
                sent.append(delivery)
                continue
            seq = event.seq if isinstance(event, Message) else None
            had_it = {h for h, s in self._joined_at.items() if seq is not None and s >= seq}
            if had_it:
                had_it.add(delivery.exclude)
                to = [handle for handle in room.handles() if handle not in had_it]
                sent.append(Delivery(event, to))
            else:
                sent.append(delivery)
        return sent

    def _refuse(self, batch: list[tuple[Held, int]]) -> None:
        """The batch's messages are void: each sender is told, and may send its id again."""
        room = self.fanout.room
        for held, lineage in batch:
            if held.sender is None:
                continue
            if held.request_id is not None:
                room.sent.forget(lineage, held.request_id)
            if room.is_member(held.sender):
                self.fanout.dispatch([unavailable(held.sender, held.request_id)])


def _seq_of(held: Held) -> int:
    for delivery in held.deliveries:
        if isinstance(delivery.event, (Message, Ack)) and delivery.event.seq is not None:
            return delivery.event.seq
    return 0


def holdings(fanouts: dict[str, Fanout]) -> dict[Fanout, Holding]:
    """A `Holding` for each room's fan-out, sharing the operator's word on the store."""
    health = StoreHealth()
    return {fanout: Holding(fanout, health) for fanout in fanouts.values()}


def open_store(config: ServerConfig) -> Store | None:
    """The store `config` asks for (None: history in memory only); raises `LogUnavailable`
    (`StoreUnavailable`, one sentence) when its file cannot be opened."""
    return None if config.db is None else Store(config.db)


@contextlib.asynccontextmanager
async def retention(
    store: Store | None, config: ServerConfig, clock: Callable[[], datetime]
) -> AsyncIterator[None]:
    """Apply the retention limits now and then hourly while the body runs, index what the
    search index lacks, then close `store`."""
    task = None if store is None else asyncio.ensure_future(_prune_hourly(store, config, clock))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if store is not None:
            try:
                await store.aclose()
            except LogUnavailable as error:
                log.warning("%s", error)


async def _prune_hourly(store: Store, config: ServerConfig, clock: Callable[[], datetime]) -> None:
    store.index_backlog()
    while True:
        try:
            gone = await store.prune(
                clock(), keep_days=config.keep_days, keep_messages=config.keep_messages
            )
        except LogUnavailable as error:
            log.warning("Old messages could not be deleted: %s", error)
        else:
            if gone:
                log.info("deleted %d old messages (retention)", gone)
        await asyncio.sleep(PRUNE_EVERY)
