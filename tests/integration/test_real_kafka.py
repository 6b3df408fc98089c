"""The local broker is real Apache Kafka 4.x: admin, produce/consume, groups and transactions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.protocol.admin import ApiVersionRequest

pytestmark = pytest.mark.broker

FETCH, LIST_OFFSETS, OFFSET_COMMIT = 1, 2, 8
CONSUMER_GROUP_HEARTBEAT, SHARE_GROUP_HEARTBEAT = 68, 76
DEADLINE_S = 30.0


@pytest.fixture
async def admin(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await client.start()
    yield client
    await client.close()


async def create_topic(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    for _ in range(50):  # metadata reaches the broker's cache shortly after the controller
        if name in await admin.list_topics():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {name} never appeared in the metadata")


async def drain(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[bytes]:
    """Every value up to the partition's end (the LSO for read_committed consumers)."""
    end = (await consumer.end_offsets([tp]))[tp]
    values: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while await consumer.position(tp) < end:
        assert time.monotonic() < deadline, f"stuck at {await consumer.position(tp)} of {end}"
        batches = await consumer.getmany(tp, timeout_ms=500)
        values += [record.value for record in batches.get(tp, []) if record.value is not None]
    return values


async def test_the_broker_speaks_the_kafka_4_protocol(bootstrap_servers: str) -> None:
    host, port = bootstrap_servers.split(",")[0].rsplit(":", 1)
    conn = await create_conn(host, int(port))
    try:
        response = await conn.send(ApiVersionRequest())
    finally:
        conn.close()
    versions = {key: (low, high) for key, low, high in response.api_versions}
    # Kafka 4.0 dropped the pre-2.1 protocol versions (KIP-896). Produce still advertises v0 for
    # librdkafka's sake (KAFKA-18659), so look at Fetch, ListOffsets and OffsetCommit instead.
    assert versions[FETCH][0] >= 4
    assert versions[LIST_OFFSETS][0] >= 1
    assert versions[OFFSET_COMMIT][0] >= 2
    # ...and it serves the KIP-848 consumer groups and the KIP-932 share groups.
    assert CONSUMER_GROUP_HEARTBEAT in versions
    assert SHARE_GROUP_HEARTBEAT in versions


async def test_the_cluster_is_one_kraft_node_that_admin_clients_can_describe(
    admin: AIOKafkaAdminClient,
) -> None:
    cluster = await admin.describe_cluster()
    assert cluster["cluster_id"]
    assert [broker["node_id"] for broker in cluster["brokers"]] == [cluster["controller_id"]]


async def test_records_produced_to_a_new_topic_reach_a_consumer_group_in_key_order(
    bootstrap_servers: str, admin: AIOKafkaAdminClient, unique_name: str
) -> None:
    topic, group = f"real-{unique_name}", f"group-{unique_name}"
    await create_topic(admin, topic, partitions=3)
    sent = [(f"member-{i % 4}".encode(), f"line-{i}".encode()) for i in range(40)]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in sent:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None, int]] = []
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len(received) < len(sent):
            assert time.monotonic() < deadline, f"got {len(received)} of {len(sent)}"
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received += [(r.key, r.value, r.partition) for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()

    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    for key in {k for k, _ in sent}:
        # One key, one partition, and within it the order it was produced in.
        assert len({p for k, _, p in received if k == key}) == 1
        assert [v for k, v, _ in received if k == key] == [v for k, v in sent if k == key]
    committed = await admin.list_consumer_group_offsets(group)
    assert sum(meta.offset for meta in committed.values()) == len(sent)


@pytest.fixture
async def committed_and_aborted(
    bootstrap_servers: str, admin: AIOKafkaAdminClient, unique_name: str
) -> TopicPartition:
    """A one-partition topic holding a committed transaction, then an aborted one."""
    topic = f"txn-{unique_name}"
    await create_topic(admin, topic, partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, transactional_id=f"txn-{unique_name}"
    )
    await producer.start()  # InitProducerId through the transaction coordinator
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(topic, f"committed-{i}".encode())
        await producer.begin_transaction()
        for i in range(2):
            await producer.send(topic, f"aborted-{i}".encode())
        await producer.flush()  # the aborted records are really in the log
        await producer.abort_transaction()
    finally:
        await producer.stop()
    return TopicPartition(topic, 0)


async def read_all(bootstrap_servers: str, tp: TopicPartition, isolation: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, isolation_level=isolation, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        return await drain(consumer, tp)
    finally:
        await consumer.stop()


async def test_a_read_committed_consumer_sees_only_the_committed_transaction(
    bootstrap_servers: str, committed_and_aborted: TopicPartition
) -> None:
    values = await read_all(bootstrap_servers, committed_and_aborted, "read_committed")
    assert values == [b"committed-0", b"committed-1", b"committed-2"]


async def test_a_read_uncommitted_consumer_also_sees_the_aborted_transaction(
    bootstrap_servers: str, committed_and_aborted: TopicPartition
) -> None:
    values = await read_all(bootstrap_servers, committed_and_aborted, "read_uncommitted")
    assert values == [
        b"committed-0",
        b"committed-1",
        b"committed-2",
        b"aborted-0",
        b"aborted-1",
    ]
