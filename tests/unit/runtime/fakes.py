"""Fakes of the Faust parts the processor touches: events, topics, a producer, a member table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types.tuples import TP, RecordMetadata

from stream_edits.rules.loader import load_rules
from stream_edits.runtime.delivery import Message
from stream_edits.runtime.processor import BatchObserver, Processor, ProcessorConfig, Topics
from stream_edits.runtime.state.claim_index import is_member_key


@dataclass
class FakeRecord:
    """A consumed record of the input topic, partition 0."""

    offset: int
    value: bytes | None
    topic: str = "claim-lines"
    partition: int = 0
    key: bytes | None = None
    timestamp: int | None = 1_700_000_000_000
    headers: list[tuple[str, bytes]] | None = None


TOPICS = Topics(
    repartition="app-claim-lines-repartition",
    output="claim-edits",
    dlq="claim-lines-dlq",
    app_id="app",
)


class FakeProducer:
    """Acknowledges sends, numbering each partition's messages from 0: at once, or when
    `release` is called while `hold` is set. Sends to `failing_topic` fail the way a rejected
    batch does (the error is on the message's future)."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.messages: list[Message] = []  # every send, as the processor made it
        self.failing_topic: str | None = None
        self.hold = False
        self._held: list[tuple[asyncio.Future[Any], RecordMetadata]] = []

    async def send(
        self, topic: str, key: Any, value: Any, partition: int, timestamp: Any, headers: Any
    ) -> Any:
        future = asyncio.get_running_loop().create_future()
        if topic == self.failing_topic:
            future.set_exception(OSError(f"{topic} rejected the batch"))
            return future
        offset = self.offsets[topic, partition] = self.offsets.get((topic, partition), -1) + 1
        self.sent.append((topic, key, value))
        self.messages.append(Message(topic, key, value, partition, headers))
        metadata = RecordMetadata(topic, partition, TP(topic, partition), offset, 0, 0)
        if self.hold:
            self._held.append((future, metadata))
        else:
            future.set_result(metadata)
        return future

    def release(self) -> None:
        """Acknowledge every held send."""
        for future, metadata in self._held:
            future.set_result(metadata)
        self._held.clear()

    async def flush(self) -> None:
        return None


class DictTable:
    """A member table in a dict, with the persisted changelog offsets."""

    changelog_topic = "members-changelog"

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.persisted_offsets: dict[int, int] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(key)

    def stored_keys(self) -> Iterator[bytes]:
        return (key for key in self.data if is_member_key(key))

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        for key, value in items:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def persisted(self, partition: int, offset: int) -> None:
        self.persisted_offsets[partition] = offset


def fake_processor(
    table: DictTable,
    horizon_days: int = 400,
    producer: FakeProducer | None = None,
    partitions: int = 1,
    member_state_max_bytes: int = 1 << 20,
    observer: BatchObserver | None = None,
    republish_replays: bool = False,
    store_on_commit: bool = False,
    member_cache: int = 0,
) -> Processor:
    """A processor with fakes for the table and producer (one partition unless told)."""
    producer = producer or FakeProducer()

    async def get_producer() -> FakeProducer:
        return producer

    return Processor(
        rules=load_rules(),
        members=table,
        producer=get_producer,  # type: ignore[arg-type]
        config=ProcessorConfig(
            topics=TOPICS,
            partitions=partitions,
            horizon_days=horizon_days,
            member_state_max_bytes=member_state_max_bytes,
            republish_replays=republish_replays,
            store_on_commit=store_on_commit,
            member_cache=member_cache,
        ),
        observer=observer,
    )
