"""The consumer thread's feed of the inbox: what it takes, when it waits, and that a take the
flow no longer accepts is put back (sought), never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.types import TP

from stream_edits.runtime.inbox import Inbox, InputRecord
from stream_edits.runtime.transport import feed
from tests.unit.runtime.fakes import FakeRecord

P0, P1 = TP("claim-lines", 0), TP("claim-lines", 1)


def _records(tp: TP, first: int, n: int) -> list[Any]:
    return [FakeRecord(o, b"{}", partition=tp.partition) for o in range(first, first + n)]


class Client:
    """Hands out scripted fetches, one per call, and remembers every call and seek."""

    def __init__(self, *fetches: Mapping[TP, list[InputRecord]]) -> None:
        self.fetches = list(fetches)
        self.asked: list[set[TP]] = []
        self.sought: list[tuple[TP, int]] = []

    async def fetch(self, partitions: set[TP]) -> Mapping[TP, list[InputRecord]]:
        self.asked.append(partitions)
        if not self.fetches:
            await asyncio.sleep(0.005)  # nothing arrived within the fetch's wait
            return {}
        return self.fetches.pop(0)

    def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


async def _run_for_a_moment(
    inbox: Inbox, client: Client, partitions: set[TP], accept: list[bool]
) -> None:
    task = asyncio.create_task(
        feed(inbox, lambda: partitions, client.fetch, lambda: accept.pop(0), client.seek)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_fetches_are_queued_in_the_order_they_were_taken() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    client = Client({P0: _records(P0, 0, 2), P1: _records(P1, 0, 1)}, {P0: _records(P0, 2, 2)})
    await _run_for_a_moment(inbox, client, {P0, P1}, [True, True])
    batch = await inbox.take(10)
    assert [(r.partition, r.offset) for r in batch.records] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (0, 2),
        (0, 3),
    ]
    assert batch.next_offsets == {P0: 4, P1: 1}
    assert client.asked[0] == {P0, P1} and client.sought == []


async def test_a_take_the_inbox_refuses_is_sought_back_to_its_first_records() -> None:
    inbox = Inbox({"claim-lines"}, capacity=100)
    client = Client({P0: _records(P0, 7, 3), P1: _records(P1, 40, 2)}, {P0: _records(P0, 7, 3)})
    await _run_for_a_moment(inbox, client, {P0, P1}, [False, True])
    assert sorted(client.sought) == [(P0, 7), (P1, 40)]  # taken and refused: put back
    batch = await inbox.take(10)
    assert [r.offset for r in batch.records] == [7, 8, 9]  # fetched again, nothing skipped


async def test_nothing_is_fetched_while_the_inbox_is_full_or_no_partition_is_to_be_fed() -> None:
    full = Inbox({"claim-lines"}, capacity=2)
    full.offer({P0: _records(P0, 0, 2)}, lambda: True)
    client = Client({P0: _records(P0, 2, 1)})
    await _run_for_a_moment(full, client, {P0}, [True])
    assert client.asked == [] and len(full) == 2  # the client keeps it: no next fetch
    await full.take(2)
    await _run_for_a_moment(full, client, {P0}, [True])
    assert [r.offset for r in (await full.take(5)).records] == [2]

    idle = Client({P0: _records(P0, 0, 1)})
    await _run_for_a_moment(Inbox({"claim-lines"}, capacity=10), idle, set(), [])
    assert idle.asked == []  # a rebalance (flow stopped) or no assignment
