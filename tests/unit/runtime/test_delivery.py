"""The batch path of `delivery.send`: messages grouped into record batches per topic partition,
in order, and the last offset of each partition read from the acknowledgements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.types.tuples import TP, RecordMetadata

from stream_edits.runtime.delivery import Message, send


class KeyedBatch(BatchBuilder):  # type: ignore[misc]
    """aiokafka's record batch builder, noting the keys of the records it took."""

    keys: list[bytes | None]

    def append(self, *, timestamp: Any, key: Any, value: Any, headers: Any = ()) -> Any:
        taken = super().append(timestamp=timestamp, key=key, value=value, headers=headers)
        if taken is not None:
            self.keys.append(key)
        return taken


class RecordingProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An aiokafka producer that never connects: each record batch is acknowledged at once, at
    the next offset of its partition, and noted with the keys it holds."""

    def __init__(self) -> None:
        super().__init__(bootstrap_servers="127.0.0.1:1", max_batch_size=256)
        self.batches: list[tuple[str, int, list[bytes | None]]] = []
        self.next_offset: dict[tuple[str, int], int] = {}

    def create_batch(self) -> KeyedBatch:
        batch: KeyedBatch = super().create_batch()
        batch.__class__ = KeyedBatch
        batch.keys = []
        return batch

    async def send_batch(self, batch: KeyedBatch, topic: str, *, partition: int) -> Any:
        base = self.next_offset.get((topic, partition), 0)
        self.next_offset[topic, partition] = base + len(batch.keys)
        self.batches.append((topic, partition, batch.keys))
        future = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata(topic, partition, TP(topic, partition), base, 0, 0))
        return future


@pytest.fixture
async def producer() -> AsyncIterator[RecordingProducer]:
    recording = RecordingProducer()
    yield recording
    await recording.stop()


async def test_messages_go_in_record_batches_per_topic_partition_in_their_order(
    producer: RecordingProducer,
) -> None:
    messages = [
        Message("claim-edits", b"a0", b"x" * 40, 0, None),
        Message("claim-lines-dlq", b"d1", b"y", 1, [("stream-edits.reason", b"conflict")]),
        Message("claim-edits", b"a1", b"x" * 40, 0, None),
        Message("claim-edits", b"b0", b"x" * 40, 1, None),
        Message("claim-edits", b"a2", b"x" * 40, 0, None),
    ]
    sent = await send(producer, messages)
    assert producer.batches == [
        ("claim-edits", 0, [b"a0", b"a1", b"a2"]),
        ("claim-lines-dlq", 1, [b"d1"]),
        ("claim-edits", 1, [b"b0"]),
    ]
    assert await sent.wait() == {
        ("claim-edits", 0): 2,
        ("claim-lines-dlq", 1): 0,
        ("claim-edits", 1): 0,
    }


async def test_a_full_record_batch_is_sent_and_the_partitions_next_one_begun(
    producer: RecordingProducer,
) -> None:
    messages = [Message("claim-edits", b"k%d" % i, b"v" * 100, 3, None) for i in range(5)]
    sent = await send(producer, messages)
    batches = [keys for _, _, keys in producer.batches]
    assert len(batches) > 1 and all(keys for keys in batches)
    assert [key for keys in batches for key in keys] == [m.key for m in messages]
    assert await sent.wait() == {("claim-edits", 3): 4}
