"""Reaches into Faust internals outside the consumer and recovery, with the reason for each (the
consumer's are in `transport.py`, recovery's in `state_healing.py`): the RocksDB partition
databases and the aiokafka producer behind Faust's."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import Producer as FaustAIOKafkaProducer
from faust.types import ProducerT


def partition_database(store: object, partition: int) -> Any | None:
    """The RocksDB database of `partition` in a Faust RocksDB store; None for other stores.

    The RocksDB store picks a read's or write's partition database from Faust's current event,
    which the input path here does not create, and runs keys and values through the serializer
    registry; the member table holds raw bytes of a known partition, so it reads and writes that
    partition's database. Faust's other stores (memory, aerospike) keep no partitions.
    """
    databases = getattr(store, "_db_for_partition", None)
    return None if databases is None else databases(partition)


def batch_producer(producer: ProducerT | AIOKafkaProducer) -> AIOKafkaProducer | None:
    """The aiokafka producer behind Faust's, when sends need no transaction; else None.

    Faust's `send` takes one message and returns one future; a batch's messages are cheaper
    appended to a record batch of the underlying producer. Under exactly_once Faust hands out
    its transaction manager instead, whose per-partition transactional producers and locks are
    Faust's to drive: those sends stay on Faust's path.
    """
    if isinstance(producer, AIOKafkaProducer):  # a plain client's (a replay's) own producer
        return producer
    if isinstance(producer, FaustAIOKafkaProducer):
        return producer._ensure_producer()
    return None
