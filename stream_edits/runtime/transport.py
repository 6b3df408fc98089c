"""A leaner input path inside the Faust app: the input topic's records skip Faust's per-message
machinery and reach the decide task a fetch at a time.

Faust hands every consumed record to its conductor one by one: a `Message`, a task race against
the flow-control event, an `Event`, a channel queue put, acks and gap bookkeeping. For the input
topic the consumer here instead moves each partition's share of a fetch into the `Inbox` as it
is, and commits the offsets the decide task reports processed. Everything else stays Faust's:
group membership and rebalances, the assignor, table recovery (changelog records still take
Faust's path), commits and transactions, and the other topics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Set
from typing import Any, cast

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT
from faust.types.transports import TPorTopicSet

from stream_edits.runtime.inbox import Inbox, InputRecord


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with the inbox's topics consumed in whole fetches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._processed: dict[TP, int] = {}

    @property
    def inbox(self) -> Inbox:
        """Where fetched input records wait for the decide task."""
        return cast(BatchingTransport, self.transport).inbox

    async def _wait_next_records(
        self, timeout: float
    ) -> tuple[Mapping[TP, list[Any]] | None, set[TP] | None]:
        records, active = await super()._wait_next_records(timeout)
        if not records:
            return records, active
        inbox = self.inbox
        rest = {}
        generation = self.app.consumer_generation_id

        def accept() -> bool:  # still the assignment these records were fetched for
            return self.flow_active and self.app.consumer_generation_id == generation

        for tp, fetched in records.items():
            if tp.topic not in inbox.topics:
                rest[tp] = fetched
            elif active is None or tp in active:
                await inbox.put(tp, cast(list[InputRecord], fetched), accept)
        return rest, active

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

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        """Faust's commit, timed (the "commit" stage)."""
        began = time.monotonic()
        try:
            committed: bool = await super().commit(*args, **kwargs)
            return committed
        finally:
            cast(BatchingTransport, self.transport).stage("commit", time.monotonic() - began)

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
        **kwargs: Any,
    ) -> None:
        super().__init__(url, app, **kwargs)
        self.inbox = inbox
        self.settle = settle
        self.stage = stage


def use_inbox(
    app: AppT,
    inbox: Inbox,
    settle: Callable[[], Awaitable[object]],
    stage: Callable[[str, float], None],
) -> None:
    """Make `app` consume the inbox's topics through `BatchingConsumer` (before it starts)."""
    app.transport = BatchingTransport(app.conf.broker_consumer, app, inbox, settle, stage)
