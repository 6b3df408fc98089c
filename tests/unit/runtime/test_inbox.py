"""The inbox between the consumer thread and the decide task: order, batch bounds, rebalances,
and the hand-over from another thread's event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

from faust.types import TP

from stream_edits.runtime.inbox import Inbox, InputRecord
from tests.unit.runtime.fakes import FakeRecord

P0, P1 = TP("claim-lines", 0), TP("claim-lines", 1)


def _records(tp: TP, first: int, n: int) -> list[FakeRecord]:
    return [FakeRecord(o, b"{}", partition=tp.partition) for o in range(first, first + n)]


def _fetch(*shares: tuple[TP, list[FakeRecord]]) -> Mapping[TP, list[InputRecord]]:
    return dict(shares)  # type: ignore[arg-type]


def _yes() -> bool:
    return True


async def test_batches_keep_fetch_order_split_chunks_and_report_the_next_offsets() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    assert inbox.offer(_fetch((P0, _records(P0, 10, 3)), (P1, _records(P1, 0, 4))), _yes)
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


async def test_a_refused_offer_queues_nothing_and_says_so() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    assert not inbox.offer(_fetch((P0, _records(P0, 0, 3))), lambda: False)
    assert len(inbox) == 0
    assert inbox.offer(_fetch((P0, _records(P0, 0, 3))), _yes)
    assert [r.offset for r in (await inbox.take(10)).records] == [0, 1, 2]


async def test_a_full_inbox_holds_the_fetcher_until_a_batch_is_taken() -> None:
    inbox = Inbox({"claim-lines"}, capacity=3)
    await inbox.room()
    inbox.offer(_fetch((P0, _records(P0, 0, 3))), _yes)
    waiting = asyncio.create_task(inbox.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the fetcher waits while the inbox is full
    await inbox.take(1)
    await asyncio.wait_for(waiting, 1)


async def test_drain_drops_queued_records_frees_room_and_waits_for_the_batch_in_flight() -> None:
    inbox = Inbox({"claim-lines"}, capacity=4)
    inbox.offer(_fetch((P0, _records(P0, 0, 6))), _yes)
    await inbox.take(2)  # in flight
    fetcher = asyncio.create_task(inbox.room())
    drained = asyncio.create_task(inbox.drain())
    await asyncio.sleep(0.01)
    assert not drained.done() and len(inbox) == 0
    assert fetcher.done()
    inbox.done()
    await asyncio.wait_for(drained, 1)


async def test_a_batch_knows_when_its_oldest_chunk_was_queued_and_its_oldest_timestamp() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    early, late = _records(P0, 0, 2), _records(P1, 0, 2)
    for n, record in enumerate(early + late):
        record.timestamp = 1_000 + 10 * n if n != 2 else 900  # P1's first is the oldest
    inbox.offer(_fetch((P0, early)), _yes)
    await asyncio.sleep(0.02)
    inbox.offer(_fetch((P1, late)), _yes)
    queued = time.time()
    batch = await inbox.take(10)
    assert queued - 1 < batch.queued_at <= queued - 0.015  # P0's chunk, queued first
    assert batch.created_ms == 900


async def test_another_threads_loop_feeds_a_waiting_decide_task_in_order_and_waits_for_room() -> (
    None
):
    # The consumer thread runs its own event loop: its offers must wake the decide task on the
    # main loop, and the decide task's takes must wake its wait for room.
    inbox = Inbox({"claim-lines"}, capacity=10)
    fetches = 50

    async def feed() -> None:
        for n in range(fetches):
            await inbox.room()
            inbox.offer(_fetch((P0, _records(P0, 5 * n, 5))), _yes)

    feeder = threading.Thread(target=lambda: asyncio.run(feed()), daemon=True)
    feeder.start()
    offsets: list[int] = []
    while len(offsets) < 5 * fetches:
        batch = await asyncio.wait_for(inbox.take(7), 5)
        assert len(inbox) <= 10 + 5  # room was waited for: at most one fetch past capacity
        offsets.extend(r.offset for r in batch.records)
        assert batch.next_offsets == {P0: offsets[-1] + 1}
        inbox.done()
    feeder.join(5)
    assert offsets == list(range(5 * fetches))
