"""The one place that reaches into Faust internals for table routing, with the reason."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from faust.streams import _current_event


@dataclass(frozen=True, slots=True)
class _Message:
    partition: int


@dataclass(frozen=True, slots=True, weakref_slot=True)
class _PartitionEvent:
    """What Faust's stores read of the current event: its message's partition."""

    message: _Message


_EVENTS: dict[int, _PartitionEvent] = {}


def bind_partition(partition: int) -> None:
    """Route the next table reads and writes to `partition`.

    Faust's RocksDB store picks the partition database of a read or write from the current
    event, which the input path here does not create: a small stand-in per partition is bound
    instead, so every member's state stays in the partition that owns the member.
    """
    event = _EVENTS.get(partition)
    if event is None:
        event = _EVENTS[partition] = _PartitionEvent(_Message(partition))
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
