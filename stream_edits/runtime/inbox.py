"""Fetched input records waiting for the decide task: whole fetches in, bounded batches out.

The consumer thread offers each fetch here as it takes it from the client, one chunk of raw
records per partition (no Faust message, event or per-record task), so the client's next fetch
goes out while the main event loop is still deciding; the decide task, on the main loop, takes
up to a batch of records at a time, in fetch order, with the offset after the last record of
each partition it took. The two sides run in different threads: the queue is guarded by a
lock, and each side wakes the other on its own event loop. On a rebalance the consumer drops
what is queued and waits for the batch in flight (`drain`): what was dropped is fetched again
from the committed offsets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
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


def _wake(waiter: asyncio.Future[None] | None) -> None:
    """Resolve `waiter` on its own event loop (from any thread)."""
    if waiter is not None and not waiter.done():
        waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # cancelled meanwhile (a stop)
        waiter.set_result(None)


class Inbox:
    """A bounded queue of fetched records of the input topics, between the consumer thread
    (`room`, `offer`) and the decide task on the main loop (`take`, `done`, `drain`)."""

    def __init__(self, topics: set[str], capacity: int) -> None:
        self.topics = topics
        self.capacity = capacity
        self._lock = threading.Lock()
        self._chunks: deque[_Chunk] = deque()
        self._size = 0
        self._taker: asyncio.Future[None] | None = None  # the decide task, waiting for records
        self._fetcher: asyncio.Future[None] | None = None  # the consumer thread, waiting for room
        self._idle = asyncio.Event()  # main loop only
        self._idle.set()

    def __len__(self) -> int:
        return self._size

    async def room(self) -> None:
        """Wait until fewer than `capacity` records are queued (on the fetching thread's loop:
        records left in the client hold its next fetch back)."""
        while True:
            with self._lock:
                if self._size < self.capacity:
                    return
                self._fetcher = waiter = asyncio.get_running_loop().create_future()
            await waiter

    def offer(self, fetched: Mapping[TP, list[InputRecord]], accept: Callable[[], bool]) -> bool:
        """Queue a fetch's records, a chunk per partition, unless `accept()` says no; from any
        thread. `accept` is asked under the inbox's lock, so a `drain` begun after it turned
        false cannot miss records queued before. False: nothing was queued."""
        queued_at = time.time()
        with self._lock:
            if not accept():
                return False
            for tp, records in fetched.items():
                if records:
                    self._chunks.append(_Chunk(tp, records, queued_at))
                    self._size += len(records)
            taker, self._taker = self._taker, None
        _wake(taker)
        return True

    async def take(self, max_records: int) -> Batch:
        """Wait for records, then take up to `max_records` of them; the inbox is busy until
        `done` is called."""
        while True:
            with self._lock:
                if self._chunks:
                    batch = self._take(max_records)
                    fetcher = self._fetcher if self._size < self.capacity else None
                    break
                self._taker = waiter = asyncio.get_running_loop().create_future()
            await waiter
        _wake(fetcher)
        self._idle.clear()
        return batch

    def _take(self, max_records: int) -> Batch:
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
        return batch

    def done(self) -> None:
        """The batch taken last is processed (or abandoned by a crash)."""
        self._idle.set()

    async def drain(self) -> None:
        """Drop every queued record and wait until the batch in flight is done."""
        with self._lock:
            self._chunks.clear()
            self._size = 0
            fetcher = self._fetcher
        _wake(fetcher)
        await self._idle.wait()
