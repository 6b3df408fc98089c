"""Input batches straight from a subscribed channel's queue: a leaner path than an agent.

The conductor decodes each Kafka message into an event and puts it on the queue of every channel
subscribed to its topic. An agent's stream then moves every event through stream processors, the
take-buffer's coroutine and a task switch or two. Here one task takes whatever has queued up
(greedily, up to a batch size), so under load a single wake-up serves hundreds of events, and a
lone event is processed at once. Acks go back through the event as they would from a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

from faust.types import AppT, EventT, TopicT


def subscribe(app: AppT, topic: TopicT) -> TopicT:
    """Register an iterator channel of `topic` with the conductor; read its `queue`."""
    channel = cast(TopicT, topic.clone(is_iterator=True))  # a Topic's clone is a Topic
    app.topics.add(channel)
    return channel


async def batches(channel: TopicT, max_events: int) -> AsyncIterator[list[EventT[bytes]]]:
    """Yield what the channel's queue holds, at least one event, at most `max_events`."""
    queue = channel.queue
    while True:
        batch: list[EventT[bytes]] = [await queue.get()]
        while len(batch) < max_events:
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        yield batch


def ack(events: list[EventT[bytes]]) -> None:
    """Mark events processed: their offsets become committable."""
    for event in events:
        event.ack()
