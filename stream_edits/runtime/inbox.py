"""Fetched input records waiting for the decide task: whole fetches in, bounded batches out.

The consumer puts each partition's share of a fetch here as one chunk of raw records (no Faust
message, event or per-record task); the decide task takes up to a batch of records at a time,
in fetch order, with the offset after the last record of each partition it took. On a rebalance
the consumer drops what is queued and waits for the batch in flight (`drain`): what was dropped
is fetched again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from faust.types.tuples import TP


class InputRecord(Protocol):
    """The fields of a consumed record the processor reads (aiokafka's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


@dataclass(slots=True)
class Batch:
    """Records to process in order, and per partition the offset to commit once they are."""

    records: list[InputRecord] = field(default_factory=list)
    next_offsets: dict[TP, int] = field(default_factory=dict)
    queued_at: float = 0.0  # time.time() when its oldest chunk was queued
    created_ms: int | None = None  # the earliest timestamp among its chunks' first records


@dataclass(slots=True)
class _Chunk:
    """A partition's share of a fetch, and when it was queued (time.time())."""

    tp: TP
    records: list[InputRecord]
    queued_at: float


class Inbox:
    """A bounded queue of fetched records of the input topics, between fetcher and decide task."""

    def __init__(self, topics: set[str], capacity: int) -> None:
        self.topics = topics
        self.capacity = capacity
        self._chunks: deque[_Chunk] = deque()
        self._size = 0
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return self._size

    async def put(self, tp: TP, records: list[InputRecord], accept: Callable[[], bool]) -> None:
        """Queue a partition's fetched records, waiting while full; `accept` is asked after the
        wait (a rebalance may have begun meanwhile, and then the records are dropped)."""
        while self._size >= self.capacity:
            self._not_full.clear()
            await self._not_full.wait()
        if records and accept():
            self._chunks.append(_Chunk(tp, records, time.time()))
            self._size += len(records)
            self._not_empty.set()

    async def take(self, max_records: int) -> Batch:
        """Wait for records, then take up to `max_records` of them; the inbox is busy until
        `done` is called."""
        while not self._chunks:
            self._not_empty.clear()
            await self._not_empty.wait()
        batch = Batch(queued_at=self._chunks[0].queued_at)
        while self._chunks and len(batch.records) < max_records:
            chunk = self._chunks[0]
            records, room = chunk.records, max_records - len(batch.records)
            if len(records) <= room:
                self._chunks.popleft()
                part = records
            else:
                part = records[:room]
                chunk.records = records[room:]
            created = part[0].timestamp
            if created is not None and (batch.created_ms is None or created < batch.created_ms):
                batch.created_ms = created
            batch.records.extend(part)
            batch.next_offsets[chunk.tp] = part[-1].offset + 1
        self._size -= len(batch.records)
        self._not_full.set()
        self._idle.clear()
        return batch

    def done(self) -> None:
        """The batch taken last is processed (or abandoned by a crash)."""
        self._idle.set()

    async def drain(self) -> None:
        """Drop every queued record and wait until the batch in flight is done."""
        self._chunks.clear()
        self._size = 0
        self._not_full.set()
        await self._idle.wait()
