"""Reaches into Faust internals outside the consumer, with the reason for each (the consumer's
are in `transport.py`): table partition routing, the RocksDB partition databases, and the
aiokafka producer behind Faust's."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

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


def partition_database(store: object, partition: int) -> Any | None:
    """The RocksDB database of `partition` in a Faust RocksDB store; None for other stores.

    Each read or write through the store's mapping interface runs the key and value through
    the serializer registry and looks up the current event for the partition; the member table
    holds raw bytes of a known partition, so it reads and writes that partition's database.
    """
    databases = getattr(store, "_db_for_partition", None)
    return None if databases is None else databases(partition)


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
