"""The one place that reaches into Faust internals, with the reason for each."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import Producer as FaustAIOKafkaProducer
from faust.types import ProducerT


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


def batch_producer(producer: ProducerT) -> AIOKafkaProducer | None:
    """The aiokafka producer behind Faust's, when sends need no transaction; else None.

    Faust's `send` takes one message and returns one future; a batch's messages are cheaper
    appended to a record batch of the underlying producer. Under exactly_once Faust hands out
    its transaction manager instead, whose per-partition transactional producers and locks are
    Faust's to drive: those sends stay on Faust's path.
    """
    if isinstance(producer, FaustAIOKafkaProducer):
        return producer._ensure_producer()
    return None
