"""`topics create`, `produce` and `tail` against the real broker, on topics unique to each test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream_edits.cli import produce as produce_command
from stream_edits.jobs import produce, tail
from stream_edits.kafka.admin import TopicsError, create_topics, create_topics_command
from stream_edits.kafka.topics import line_key
from stream_edits.models import Decision, Edit, RuleSource, Status
from stream_edits.settings import Settings
from tests.factories import NPI_A

pytestmark = pytest.mark.broker

PARTITIONS = 3
DEADLINE_S = 30.0


@pytest.fixture
async def settings(bootstrap_servers: str, unique_name: str) -> AsyncIterator[Settings]:
    """Settings naming topics of this test only; the topics are deleted afterwards."""
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        input_topic=f"lines-{unique_name}",
        output_topic=f"edits-{unique_name}",
        dlq_topic=f"dlq-{unique_name}",
        partitions=PARTITIONS,
    )
    yield settings
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = [settings.input_topic, settings.output_topic, settings.dlq_topic]
        if doomed := [name for name in ours if name in existing]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def read_all(
    settings: Settings, topic: str, expected: int
) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of the first `expected` records of `topic`, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < expected:
            assert time.monotonic() < deadline, f"only {len(records)} of {expected} records"
            batches = await consumer.getmany(timeout_ms=500)
            records += [(r.partition, r.key, r.value) for rs in batches.values() for r in rs]
        return sorted(records, key=lambda r: r[0])
    finally:
        await consumer.stop()


async def test_creating_the_topics_twice_creates_them_once_with_the_contract_configs(
    settings: Settings,
) -> None:
    names = [settings.input_topic, settings.output_topic, settings.dlq_topic]
    assert await create_topics(settings) == names
    assert await create_topics(settings) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        assert {name: len(described[name]["partitions"]) for name in names} == dict.fromkeys(
            names, PARTITIONS
        )
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, name, configs={"cleanup.policy": None})
            for name in names
        ]
        (response,) = await admin.describe_configs(resources)
        policies = {res[3]: dict(entry[:2] for entry in res[4]) for res in response.resources}
    finally:
        await admin.close()
    assert {name: policies[name]["cleanup.policy"] for name in names} == {
        settings.input_topic: "delete",
        settings.output_topic: "compact",
        settings.dlq_topic: "delete",
    }


async def test_an_existing_topic_with_another_partition_count_is_an_error_not_a_change(
    settings: Settings,
) -> None:
    await create_topics(settings)
    resized = settings.model_copy(update={"partitions": PARTITIONS + 1})
    with pytest.raises(TopicsError, match=f"has {PARTITIONS} partitions"):
        await create_topics(resized)


async def test_the_topics_command_prints_created_then_exists_for_each_topic(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(create_topics_command, settings) == 0
    assert await asyncio.to_thread(create_topics_command, settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [settings.input_topic, "created"],
        [settings.output_topic, "created"],
        [settings.dlq_topic, "created"],
        [settings.input_topic, "exists"],
        [settings.output_topic, "exists"],
        [settings.dlq_topic, "exists"],
    ]


async def test_produce_publishes_each_line_as_is_keyed_by_member_id(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_topics(settings)
    valid = [
        orjson.dumps({"claim_id": f"C{n}", "line_number": 1, "member_id": member, "n": n})
        for n, member in enumerate(["M1", "M2", "M1", " M2 "])
    ]
    unkeyed = [b'{"claim_id": "C9", "line_number": 1', b'{"claim_id": "C8"}']
    path = tmp_path / "lines.ndjson"
    path.write_bytes(b"\n".join([*valid[:2], b"", b"   ", *unkeyed, *valid[2:]]) + b"\r\n")

    assert await asyncio.to_thread(produce.run, settings, str(path), False) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"published 6 lines to {settings.input_topic}"
    )

    records = await read_all(settings, settings.input_topic, 6)
    assert {value: key for _, key, value in records} == {
        valid[0]: b"M1",
        valid[1]: b"M2",
        valid[2]: b"M1",
        valid[3]: b"M2",  # stripped, as the model strips member_id
        unkeyed[0]: None,  # published anyway, for the worker's dead-letter path
        unkeyed[1]: None,
    }
    # One member, one partition, in file order.
    for member, expected in ((b"M1", valid[0::2]), (b"M2", valid[1::2])):
        mine = [(p, value) for p, key, value in records if key == member]
        assert len({p for p, _ in mine}) == 1
        assert [value for _, value in mine] == expected


async def test_produce_exits_2_when_the_file_cannot_be_read(
    settings: Settings, tmp_path: Path
) -> None:
    chosen = produce_command.ProduceOptions(str(tmp_path / "absent"), progress=False)
    assert await asyncio.to_thread(produce_command.run, settings, chosen) == 2


def decision(claim_id: str, line_number: int, status: Status, edits: list[Edit]) -> Decision:
    return Decision(
        claim_id=claim_id,
        line_number=line_number,
        member_id="M10001",
        date_of_service=date(2025, 3, 14),
        procedure_code="64462",
        status=status,
        edits=edits,
        revision=2,
        provider_npi=NPI_A,
    )


async def test_tail_prints_published_decisions_as_json_or_masked_lines(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_topics(settings)
    source = RuleSource(table="AOC", file="aoc.csv", row=7, effective_date=date(2016, 1, 1))
    missing_primary = Edit(code="ADDON_WITHOUT_PRIMARY", message="no 64461", rule_source=source)
    decisions = [
        decision("C9001", 1, Status.DENY, [missing_primary]),
        decision("C9002", 1, Status.ACCEPT, []),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for d in decisions:
            key = line_key(d.claim_id, d.line_number)
            value = d.model_dump_json(exclude_none=True).encode()
            await producer.send_and_wait(settings.output_topic, value, key=key)
    finally:
        await producer.stop()

    assert await asyncio.to_thread(tail.run, settings, True, True, 20.0, 2) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(d.model_dump_json(exclude_none=True) for d in decisions)

    assert await asyncio.to_thread(tail.run, settings, False, True, 20.0, 2) == 0
    human = capsys.readouterr().out
    assert "M10001" not in human
    deny = next(line for line in human.splitlines() if line.startswith("C9001#1"))
    assert deny.split()[:6] == ["C9001#1", "64462", "DENY", "rev", "2", "ADDON_WITHOUT_PRIMARY"]
    assert deny.endswith("(member ***01, DOS 2025-03-14)")


async def test_tail_stops_after_idle_seconds_without_decisions(settings: Settings) -> None:
    await create_topics(settings)
    started = time.monotonic()
    assert await asyncio.to_thread(tail.run, settings, True, False, 1.0, None) == 0
    assert time.monotonic() - started < 10
