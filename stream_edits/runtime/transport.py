"""A leaner input path inside the Faust app: the input topics' records skip Faust's per-message
machinery and reach the decide task a fetch at a time, taken from the client in Faust's consumer
thread.

Faust hands every consumed record to its conductor one by one: a `Message`, a task race against
the flow-control event, an `Event`, a channel queue put, acks and gap bookkeeping. For the input
topics the consumer here instead moves each partition's share of a fetch into the `Inbox` as it
is, and commits the offsets the decide task reports processed. Everything else stays Faust's:
group membership and rebalances, the assignor, table recovery (changelog records still take
Faust's path), commits and transactions, and the other topics.

Why in the consumer thread: aiokafka sends a broker its next fetch only once the records of the
previous one are taken, and Faust takes them when its fetch loop on the main event loop asks,
the loop on which batches are decided. Taking the input topics' records in the thread that runs
aiokafka instead, as soon as they arrive, keeps a fetch going out while a batch is decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Set
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT
from faust.types.transports import TPorTopicSet

from stream_edits.log_safety import exception_summary
from stream_edits.runtime.inbox import Inbox, InputRecord

log = logging.getLogger(__name__)

# How long one wait of the consumer thread for the inbox's records lasts before it looks at
# the assignment again; and how often it looks while the flow is stopped (a rebalance) or no
# input partition is assigned. Records end a wait as soon as they arrive.
FETCH_WAIT_S = 0.2
IDLE_POLL_S = 0.05
# What a fetch asks the broker to wait for: this many bytes, or this long. Faust asks for 1 byte
# or 1,500 ms, so the broker answers a parked fetch as soon as any record arrives; with records
# taken as they arrive, that is a fetch round trip (and a hand-over between the threads, each
# waiting for the other to let go of the GIL) per producer request, thousands a second at 5,000
# lines/s, which cost more than they save. Waiting up to 5 ms for 64 KiB bounds those round
# trips at 200 a second while data trickles in; a backlog fills a fetch at once. (10 ms halves
# the batches at moderate rates, but in one bench run it gave p99 27.5 against 17.0 ms at
# 5,000 lines/s and the same CPU per line: docs/performance.md.)
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 5
# How often Faust's fetch loop looks for partitions of other topics (changelogs to recover)
# while only the inbox's are active.
OTHERS_POLL_S = 0.1


class InboxFeedingThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a task of its own that moves the inbox's records from the
    client into the inbox as they arrive."""

    _feeder: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        """Start the client, then the feeder, on this thread's event loop."""
        await super().on_start()
        self._feeder = asyncio.ensure_future(self._feed_inbox())

    async def on_thread_stop(self) -> None:
        """Stop the feeder before Faust stops the client."""
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        await super().on_thread_stop()

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        """Faust's client, its fetches sized for records taken as they arrive (see
        FETCH_MIN_BYTES). Faust passes fixed values; the client reads these when it starts."""
        client = super()._create_worker_consumer(transport)
        client._fetch_min_bytes = FETCH_MIN_BYTES
        client._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return client

    async def _feed_inbox(self) -> None:
        try:
            await self._feed(cast(BatchingConsumer, self.consumer))
        except ConsumerStoppedError:
            return
        except Exception as error:  # a fetch error Faust's fetch loop would crash on
            log.error("fetching the input failed: %s", exception_summary(error))
            asyncio.run_coroutine_threadsafe(self.app.crash(error), self.parent_loop)

    async def _feed(self, owner: BatchingConsumer) -> None:
        client = self._ensure_consumer()

        async def fetch(partitions: set[TP]) -> Mapping[TP, list[InputRecord]]:
            fetched = await self._fetch_records(client, partitions, timeout=FETCH_WAIT_S)
            return cast(Mapping[TP, list[InputRecord]], fetched)

        def seek(tp: TP, offset: int) -> None:
            with contextlib.suppress(IllegalStateError):  # no longer assigned: nothing to keep
                client.seek(tp, offset)

        await feed(owner.inbox, owner.feeding_partitions, fetch, owner.flow_is_active, seek)


async def feed(
    inbox: Inbox,
    partitions: Callable[[], set[TP]],
    fetch: Callable[[set[TP]], Awaitable[Mapping[TP, list[InputRecord]]]],
    accept: Callable[[], bool],
    seek: Callable[[TP, int], None],
) -> None:
    """Take the inbox's records from the client as they arrive and offer them to the inbox.

    `partitions` are those to fetch now (none while Faust's flow is stopped: from a
    rebalance's start until the new assignment is recovered and sought to its committed
    offsets). If `accept` turned false between the take and the offer, the inbox refuses the
    records and each partition is sought back to its first record: the client's position is
    where it was, and no record is skipped. The take and the offer run without an await
    between them, so no rebalance of this consumer (its callbacks run on the same thread)
    falls between.
    """
    while True:
        await inbox.room()
        wanted = partitions()
        if not wanted:
            await asyncio.sleep(IDLE_POLL_S)
            continue
        fetched = await fetch(wanted)
        if fetched and not inbox.offer(fetched, accept):
            for tp, taken in fetched.items():
                if taken:
                    seek(tp, taken[0].offset)


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with the inbox's topics consumed in whole fetches, fed from
    the consumer thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._processed: dict[TP, int] = {}

    def _new_consumer_thread(self) -> InboxFeedingThread:
        return InboxFeedingThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def inbox(self) -> Inbox:
        """Where fetched input records wait for the decide task."""
        return cast(BatchingTransport, self.transport).inbox

    def flow_is_active(self) -> bool:
        """False from a rebalance's start until its partitions are recovered and sought."""
        return self.flow_active

    def feeding_partitions(self) -> set[TP]:
        """The inbox's partitions to fetch now: Faust's active ones (assigned, not paused)
        while the flow is on; none otherwise. Read from the consumer thread."""
        if not self.flow_active:
            return set()
        active = set(self._active_partitions or ())  # one C-level copy: safe across threads
        return {tp for tp in active if tp.topic in self.inbox.topics}

    async def _getmany(
        self, active_partitions: Set[TP] | None, timeout: float
    ) -> Mapping[TP, list[Any]]:
        """Faust's fetch loop fetches every active partition but the inbox's (changelogs while
        recovering): the consumer thread takes the inbox's."""
        topics = self.inbox.topics
        others = {tp for tp in active_partitions or () if tp.topic not in topics}
        if not others:
            await self.sleep(OTHERS_POLL_S)
            return {}
        fetched: Mapping[TP, list[Any]] = await super()._getmany(others, timeout)
        return fetched

    def processed(self, next_offsets: Mapping[TP, int]) -> None:
        """Records before these offsets are processed: they may be committed."""
        self._processed.update(next_offsets)

    def processed_offsets(self) -> dict[TP, int]:
        """Per partition, the offset before which every record is processed (since the last
        assignment)."""
        return dict(self._processed)

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self.inbox.topics:
            return self._processed.get(tp)
        offset: int | None = super()._new_offset(tp)
        return offset

    def _filter_tps_with_pending_acks(self, topics: TPorTopicSet | None = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in self._processed:
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    async def wait_empty(self) -> None:
        """Before a rebalance or a stop: drop queued input, finish the batch being processed and
        the deliveries of those before it, then let Faust wait for its own streams and commit.
        (A revoked partition's state must be in its changelog before its next owner reads it.)"""
        await self.inbox.drain()
        await cast(BatchingTransport, self.transport).settle()
        await super().wait_empty()

    @property
    def batch_gate(self) -> asyncio.Lock:
        """Held by the decide task while it processes a batch, and by a transaction's commit."""
        return cast(BatchingTransport, self.transport).batch_gate

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        """Faust's commit, timed (the "commit" stage). Under exactly_once, first every batch
        handed over is settled, and none begins until the commit is done: a transaction then
        holds no output whose input offset it does not commit. (Faust commits on its own timer:
        outputs of batches still on their way went into the transaction without their offsets,
        and after a kill -9 their records were replayed and their committed decisions published
        again.)"""
        transport = cast(BatchingTransport, self.transport)
        began = time.monotonic()
        try:
            if not self.in_transaction:
                committed: bool = await super().commit(*args, **kwargs)
                return committed
            async with transport.batch_gate:
                await transport.settle()
                committed = await super().commit(*args, **kwargs)
                if committed:
                    held = {
                        tp.partition for tp in self.assignment() if tp.topic in self.inbox.topics
                    }
                    transport.committed(held)
                return committed
        finally:
            transport.stage("commit", time.monotonic() - began)

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        """Forget processed offsets: they were committed when the partitions were revoked, and
        the new assignment starts from the committed offsets."""
        self._processed = {}
        await super().on_partitions_assigned(assigned, generation_id)


class BatchingTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose consumer feeds `inbox`; `settle` finishes the batches
    handed over (their deliveries), `stage` is told how long each commit took."""

    Consumer = BatchingConsumer

    def __init__(
        self,
        url: Any,
        app: AppT,
        inbox: Inbox,
        settle: Callable[[], Awaitable[object]],
        stage: Callable[[str, float], None],
        committed: Callable[[Set[int]], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(url, app, **kwargs)
        self.inbox = inbox
        self.settle = settle
        self.stage = stage
        self.committed = committed
        self.batch_gate = asyncio.Lock()


def use_inbox(
    app: AppT,
    inbox: Inbox,
    settle: Callable[[], Awaitable[object]],
    stage: Callable[[str, float], None],
    committed: Callable[[Set[int]], None],
) -> None:
    """Make `app` consume the inbox's topics through `BatchingConsumer` (before it starts);
    `committed` is told the member partitions held when a transaction commits."""
    app.transport = BatchingTransport(
        app.conf.broker_consumer, app, inbox, settle, stage, committed
    )
