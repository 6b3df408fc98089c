"""Where a member's lines are decided: the owner partition of a member_id, and the headers that
carry a forwarded record's origin.

The owner function is Kafka's default partitioner over the member_id key (murmur2 of its UTF-8
bytes, sign bit cleared, modulo the partition count), the one the Java client, aiokafka and
Faust use. A producer that keys `claim-lines` by member_id with that partitioner puts every line
on its owner partition already; any other line (unkeyed, another key, librdkafka's CRC32
partitioner, a manual partition) is forwarded there through the repartition topic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from aiokafka.partitioner import murmur2

from stream_edits.models import SourceOffset

Headers = Sequence[tuple[str, bytes]]

SOURCE_TOPIC = "stream-edits.source.topic"
SOURCE_PARTITION = "stream-edits.source.partition"
SOURCE_OFFSET = "stream-edits.source.offset"
SOURCE_TIMESTAMP = "stream-edits.source.timestamp"


def owner_function(partitions: int) -> Callable[[str], int]:
    """The owner partition of a member_id among `partitions` (cached: murmur2 is pure Python)."""

    @lru_cache(maxsize=1 << 17)
    def owner(member_id: str) -> int:
        hashed: int = murmur2(member_id.encode())
        return (hashed & 0x7FFFFFFF) % partitions

    return owner


def origin_headers(source: SourceOffset, timestamp: int | None) -> list[tuple[str, bytes]]:
    """Headers naming a record's original `claim-lines` position and timestamp."""
    headers = [
        (SOURCE_TOPIC, source.topic.encode()),
        (SOURCE_PARTITION, str(source.partition).encode()),
        (SOURCE_OFFSET, str(source.offset).encode()),
    ]
    if timestamp is not None:
        headers.append((SOURCE_TIMESTAMP, str(timestamp).encode()))
    return headers


def origin_of(
    topic: str, partition: int, offset: int, timestamp: int | None, headers: Headers | None
) -> tuple[SourceOffset, int | None]:
    """The original position and timestamp of a consumed record: its own, unless it was
    forwarded (then its headers name them; unreadable headers leave its own)."""
    if headers:
        found = {name: value for name, value in headers if name.startswith("stream-edits.source.")}
        if SOURCE_TOPIC in found:
            try:
                source = SourceOffset(
                    topic=found[SOURCE_TOPIC].decode(),
                    partition=int(found[SOURCE_PARTITION]),
                    offset=int(found[SOURCE_OFFSET]),
                )
                stamp = found.get(SOURCE_TIMESTAMP)
                return source, int(stamp) if stamp is not None else None
            except (KeyError, ValueError):
                pass
    return SourceOffset(topic=topic, partition=partition, offset=offset), timestamp
