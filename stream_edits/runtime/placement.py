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
from typing import NamedTuple

from aiokafka.partitioner import murmur2

Headers = Sequence[tuple[str, bytes]]


class Origin(NamedTuple):
    """Where a record was first read: its `claim-lines` position and timestamp (ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None


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


def origin_headers(origin: Origin) -> list[tuple[str, bytes]]:
    """Headers naming a record's original `claim-lines` position and timestamp."""
    headers = [
        (SOURCE_TOPIC, origin.topic.encode()),
        (SOURCE_PARTITION, str(origin.partition).encode()),
        (SOURCE_OFFSET, str(origin.offset).encode()),
    ]
    if origin.timestamp is not None:
        headers.append((SOURCE_TIMESTAMP, str(origin.timestamp).encode()))
    return headers


def origin_of(
    topic: str, partition: int, offset: int, timestamp: int | None, headers: Headers | None
) -> Origin:
    """Where a consumed record was first read: its own position, unless it was forwarded (then
    its headers name it; unreadable headers leave its own)."""
    if headers:
        found = {name: value for name, value in headers if name.startswith("stream-edits.source.")}
        if SOURCE_TOPIC in found:
            try:
                stamp = found.get(SOURCE_TIMESTAMP)
                return Origin(
                    found[SOURCE_TOPIC].decode(),
                    int(found[SOURCE_PARTITION]),
                    int(found[SOURCE_OFFSET]),
                    int(stamp) if stamp is not None else None,
                )
            except (KeyError, ValueError, UnicodeDecodeError):
                pass
    return Origin(topic, partition, offset, timestamp)
