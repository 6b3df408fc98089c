"""Producers nobody here wrote put claim lines on the real broker, each with its own partitioner."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream_edits.settings import Settings
from tests.integration.foreign_producers import (
    console_produce,
    crc32_partition,
    librdkafka_produce,
    murmur2_partition,
)
from tests.integration.test_real_kafka import create_topic

pytestmark = pytest.mark.broker

PARTITIONS = 4
LINES = 40
# Ten members; crc32 and murmur2 place nine of them on different partitions out of four.
MEMBERS = [f"M{n:05d}".encode() for n in range(1, 11)]
DEADLINE_S = 30.0


class Record(NamedTuple):
    partition: int
    key: bytes | None
    value: bytes


def claim_lines() -> tuple[list[bytes], list[bytes]]:
    """LINES distinct JSON claim lines (one with non-ASCII text) and each one's member_id key."""
    keys = [MEMBERS[n % len(MEMBERS)] for n in range(LINES)]
    lines = [
        json.dumps(
            {
                "claim_id": f"C{n // 4:04d}",
                "line_number": n % 4 + 1,
                "member_id": key.decode(),
                "hcpcs": "97110",
                "units": n % 3 + 1,
                "rendering_provider": "Zoë Ångström" if n == 7 else "Lee",
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        for n, key in enumerate(keys)
    ]
    return lines, keys


@pytest.fixture
async def topic(bootstrap_servers: str, unique_name: str) -> AsyncIterator[str]:
    """A fresh topic of PARTITIONS partitions, deleted afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await create_topic(admin, unique_name, PARTITIONS)
        yield unique_name
        await admin.delete_topics([unique_name])
    finally:
        await admin.close()


async def read_back(bootstrap: str, topic: str) -> list[Record]:
    """Every record on the topic, read from the start of each partition to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Record] = []
        deadline = time.monotonic() + DEADLINE_S
        while [await consumer.position(tp) for tp in tps] != [ends[tp] for tp in tps]:
            assert time.monotonic() < deadline, f"read {len(records)} records in {DEADLINE_S} s"
            batches = await consumer.getmany(*tps, timeout_ms=500)
            records += [
                Record(r.partition, r.key, r.value)
                for batch in batches.values()
                for r in batch
                if r.value is not None
            ]
        return records
    finally:
        await consumer.stop()


def assert_each_line_once(records: list[Record], lines: list[bytes]) -> None:
    assert len(set(lines)) == len(lines)
    assert Counter(r.value for r in records) == Counter(lines)


def assert_members_in_order(records: list[Record], lines: list[bytes]) -> None:
    """Each member's lines arrive in the order they were produced (one partition per member)."""
    for member in MEMBERS:
        sent = [line for line in lines if f'"member_id":"{member.decode()}"'.encode() in line]
        assert [r.value for r in records if r.key == member] == sent


async def test_console_producer_spreads_unkeyed_lines_round_robin(
    bootstrap_servers: str, topic: str
) -> None:
    lines, _ = claim_lines()
    settings = Settings(bootstrap_servers=bootstrap_servers)
    await asyncio.to_thread(console_produce, settings, topic, lines)
    records = await read_back(bootstrap_servers, topic)
    assert_each_line_once(records, lines)
    assert all(r.key is None for r in records)
    spread = Counter(r.partition for r in records)
    assert spread == {p: LINES // PARTITIONS for p in range(PARTITIONS)}


async def test_console_producer_places_keyed_lines_by_murmur2(
    bootstrap_servers: str, topic: str
) -> None:
    lines, keys = claim_lines()
    settings = Settings(bootstrap_servers=bootstrap_servers)
    await asyncio.to_thread(console_produce, settings, topic, lines, keys=keys)
    records = await read_back(bootstrap_servers, topic)
    assert_each_line_once(records, lines)
    assert Counter(r.key for r in records) == Counter(keys)
    assert [r.partition for r in records] == [
        murmur2_partition(r.key or b"", PARTITIONS) for r in records
    ]
    assert_members_in_order(records, lines)


async def test_librdkafka_places_keyed_lines_by_crc32_not_murmur2(
    bootstrap_servers: str, topic: str
) -> None:
    lines, keys = claim_lines()
    await asyncio.to_thread(librdkafka_produce, bootstrap_servers, topic, lines, keys)
    records = await read_back(bootstrap_servers, topic)
    assert_each_line_once(records, lines)
    assert Counter(r.key for r in records) == Counter(keys)
    assert [r.partition for r in records] == [
        crc32_partition(r.key or b"", PARTITIONS) for r in records
    ]
    moved = {r.key for r in records if r.partition != murmur2_partition(r.key or b"", PARTITIONS)}
    assert moved, "every member landed where murmur2 puts it: the partitioners did not differ"
    assert_members_in_order(records, lines)
