"""Sending a batch's messages and knowing they arrived: the only way out of the processor.

Faust's and aiokafka's `flush` wait for every pending send but report no failure, so the result
of each send is checked here: a failed send raises, and is never mistaken for a delivered one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from aiokafka import AIOKafkaProducer
from faust.types import ProducerT
from faust.types.tuples import RecordMetadata

from stream_edits.stream.faust_compat import batch_producer

Message = tuple[str, bytes | None, bytes | None, int]  # topic, key, value, partition
LastOffsets = dict[tuple[str, int], int]  # (topic, partition) → offset of the last message


async def deliver(producer: ProducerT, messages: Sequence[Message]) -> LastOffsets:
    """Send messages in order, wait until all are acknowledged, raise the first delivery error.

    Returns the offset of the last message delivered to each topic partition.
    """
    if not messages:
        return {}
    batching = batch_producer(producer)
    if batching is not None:
        return await _deliver_batched(batching, messages)
    return await _deliver_each(producer, messages)


async def _deliver_each(producer: ProducerT, messages: Sequence[Message]) -> LastOffsets:
    """One send per message, through Faust (its transaction manager under exactly_once)."""
    futures = [
        await producer.send(topic, key, value, partition, None, None)
        for topic, key, value, partition in messages
    ]
    await producer.flush()
    last: LastOffsets = {}
    for future in futures:
        metadata = cast(asyncio.Future[RecordMetadata], future).result()
        last[metadata.topic, metadata.partition] = metadata.offset
    return last


async def _deliver_batched(producer: AIOKafkaProducer, messages: Sequence[Message]) -> LastOffsets:
    """Record batches built here, one (or more, when full) per topic partition: no per-message
    future, callback or metadata wait."""
    groups: dict[tuple[str, int], list[Message]] = {}
    for message in messages:
        groups.setdefault((message[0], message[3]), []).append(message)
    pending = []
    for (topic, partition), group in groups.items():
        builder = producer.create_batch()
        count = 0
        for _, key, value, _ in group:
            if builder.append(key=key, value=value, timestamp=None) is None:  # full
                pending.append(
                    (await producer.send_batch(builder, topic, partition=partition), count)
                )
                builder, count = producer.create_batch(), 0
                builder.append(key=key, value=value, timestamp=None)
            count += 1
        pending.append((await producer.send_batch(builder, topic, partition=partition), count))
    await producer.flush()
    last: LastOffsets = {}
    for future, count in pending:
        metadata = future.result()  # the batch's base offset
        last[metadata.topic, metadata.partition] = metadata.offset + count - 1
    return last
