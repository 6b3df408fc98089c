"""The inbox between the consumer and the decide task: order, batch bounds, rebalances."""

from __future__ import annotations

import asyncio
import time

from faust.types import TP

from stream_edits.runtime.inbox import Inbox
from tests.unit.runtime.fakes import FakeRecord

P0, P1 = TP("claim-lines", 0), TP("claim-lines", 1)


def _records(tp: TP, first: int, n: int) -> list[FakeRecord]:
    return [FakeRecord(o, b"{}", partition=tp.partition) for o in range(first, first + n)]


def _yes() -> bool:
    return True


async def test_batches_keep_fetch_order_split_chunks_and_report_the_next_offsets() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    await inbox.put(P0, _records(P0, 10, 3), _yes)  # type: ignore[arg-type]
    await inbox.put(P1, _records(P1, 0, 4), _yes)  # type: ignore[arg-type]
    first = await inbox.take(5)
    assert [(r.partition, r.offset) for r in first.records] == [
        (0, 10), (0, 11), (0, 12), (1, 0), (1, 1),
    ]  # fmt: skip
    assert first.next_offsets == {P0: 13, P1: 2}
    inbox.done()
    second = await inbox.take(5)
    assert [r.offset for r in second.records] == [2, 3]
    assert second.next_offsets == {P1: 4}
    assert len(inbox) == 0


async def test_a_full_inbox_holds_the_fetcher_and_records_refused_after_the_wait_are_dropped() -> (
    None
):
    inbox = Inbox({"claim-lines"}, capacity=3)
    await inbox.put(P0, _records(P0, 0, 3), _yes)  # type: ignore[arg-type]
    still_current = True
    blocked = asyncio.create_task(
        inbox.put(P0, _records(P0, 3, 2), lambda: still_current)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.01)
    assert not blocked.done()  # the fetcher waits while the inbox is full
    still_current = False  # meanwhile a rebalance began
    await inbox.take(3)
    await blocked
    assert len(inbox) == 0  # fetched for the old assignment: dropped, fetched again later


async def test_drain_drops_queued_records_and_waits_for_the_batch_in_flight() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    await inbox.put(P0, _records(P0, 0, 4), _yes)  # type: ignore[arg-type]
    await inbox.take(2)  # in flight
    drained = asyncio.create_task(inbox.drain())
    await asyncio.sleep(0.01)
    assert not drained.done() and len(inbox) == 0
    inbox.done()
    await asyncio.wait_for(drained, 1)


async def test_a_batch_knows_when_its_oldest_chunk_was_queued_and_its_oldest_timestamp() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    early, late = _records(P0, 0, 2), _records(P1, 0, 2)
    for n, record in enumerate(early + late):
        record.timestamp = 1_000 + 10 * n if n != 2 else 900  # P1's first is the oldest
    await inbox.put(P0, early, _yes)  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    await inbox.put(P1, late, _yes)  # type: ignore[arg-type]
    queued = time.time()
    batch = await inbox.take(10)
    assert queued - 1 < batch.queued_at <= queued - 0.015  # P0's chunk, queued first
    assert batch.created_ms == 900
