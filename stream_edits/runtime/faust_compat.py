"""Reaches into Faust internals outside the consumer and recovery, with the reason for each (the
consumer's are in `transport.py`, recovery's in `state_healing.py`): the RocksDB partition
databases and the aiokafka producer behind Faust's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import Producer as FaustAIOKafkaProducer
from faust.types import TP, ProducerT


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


def is_transaction_manager(producer: ProducerT) -> bool:
    """True for Faust's transaction manager (what the app's producer is under exactly_once)."""
    return isinstance(producer, TransactionManager)


def transaction_of(producer: ProducerT, source: TP) -> tuple[AIOKafkaProducer, asyncio.Lock]:
    """Under exactly_once, the transactional aiokafka producer of the consumed partition
    `source`, and the lock Faust holds while it commits that transaction and begins the next.

    Faust names a partition's transaction `<app id>-<topic group>-<partition>` and commits the
    partition's offsets in it; its own `send` picks the transaction from a message's destination
    instead (faust transport/consumer.py), which breaks for a message sent to a partition of
    another worker. Appending whole record batches to that producer also keeps the batch path's
    cost, and takes a record with neither key nor value, which aiokafka's `send` refuses.
    """
    if not isinstance(producer, TransactionManager):
        raise TypeError(f"not Faust's transaction manager: {type(producer).__name__}")
    group = producer.app.assignor.group_for_topic(source.topic)
    transactional_id = f"{producer.app.conf.id}-{group}-{source.partition}"
    faust_producer = producer.producer
    if not isinstance(faust_producer, FaustAIOKafkaProducer):
        raise TypeError(f"not Faust's aiokafka producer: {type(faust_producer).__name__}")
    transactional: AIOKafkaProducer = faust_producer._transaction_producers[transactional_id]
    lock: asyncio.Lock = faust_producer._trn_locks[transactional_id]
    return transactional, lock
