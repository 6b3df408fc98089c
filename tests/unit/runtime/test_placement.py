"""Lines reach their member's partition whatever the producer did; what was applied is kept per
consumed partition; dead letters keep the record's bytes; a member's state stays bounded."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import murmur2
from faust.types import TP

from stream_edits.models import DeadLetterHeaders, RejectCode
from stream_edits.runtime.placement import (
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    origin_of,
    owner_function,
)
from tests.factories import line
from tests.unit.runtime.fakes import TOPICS, DictTable, FakeProducer, FakeRecord, fake_processor

PARTITIONS = 4


def _owner(member_id: str) -> int:
    return (murmur2(member_id.encode()) & 0x7FFFFFFF) % PARTITIONS


def _member_on(partition: int) -> str:
    """A member id whose owner partition is `partition`."""
    return next(f"M{n}" for n in range(1000) if _owner(f"M{n}") == partition)


def _raw(claim_id: str, code: str, member_id: str, **extra: object) -> bytes:
    return line(claim_id, 1, code, member_id=member_id, **extra).model_dump_json().encode()


def _sent(producer: FakeProducer, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(m.partition, m.key, m.value) for m in producer.messages if m.topic == topic]


async def _run(processor: object, records: list[FakeRecord], tp: TP) -> dict[TP, int]:
    committable: dict[TP, int] = await processor.process_batch(  # type: ignore[attr-defined]
        records, {tp: records[-1].offset + 1}
    )
    committable.update(await processor.settle())  # type: ignore[attr-defined]
    return committable


def test_the_owner_is_kafkas_default_partitioner_over_the_member_id() -> None:
    owner = owner_function(PARTITIONS)
    for n in range(200):
        assert owner(f"member-{n}") == _owner(f"member-{n}")
    assert {owner(f"member-{n}") for n in range(200)} == set(range(PARTITIONS))


async def test_a_line_off_its_members_partition_is_forwarded_unchanged_with_its_origin() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    member = _member_on(2)
    raw = _raw("C1", "64461", member)
    record = FakeRecord(41, raw, partition=0, key=None, timestamp=1_700_000_000_123)
    assert await _run(processor, [record], TP("claim-lines", 0)) == {TP("claim-lines", 0): 42}
    forwards = _sent(producer, TOPICS.repartition)
    assert [(p, k, v) for p, k, v in forwards] == [(2, member.encode(), raw)]
    headers = dict(producer.messages[0].headers or [])
    assert headers[SOURCE_TOPIC] == b"claim-lines"
    assert (headers[SOURCE_PARTITION], headers[SOURCE_OFFSET]) == (b"0", b"41")
    assert not _sent(producer, "claim-edits") and table.data == {}  # decided at the owner
    assert processor.stats.forwarded == 1


async def test_a_forwarded_line_is_decided_at_its_owner_and_names_its_original_record() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    member = _member_on(3)
    origin = [(SOURCE_TOPIC, b"claim-lines"), (SOURCE_PARTITION, b"1"), (SOURCE_OFFSET, b"7")]
    record = FakeRecord(
        0, _raw("C1", "64461", member), topic=TOPICS.repartition, partition=3, headers=origin
    )
    await _run(processor, [record], TP(TOPICS.repartition, 3))
    ((partition, _, value),) = _sent(producer, "claim-edits")
    decision = orjson.loads(value or b"")
    assert partition == 3 and decision["status"] == "accept"
    assert decision["source"] == {"topic": "claim-lines", "partition": 1, "offset": 7}


async def test_a_line_on_its_owner_partition_takes_no_hop() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    member = _member_on(1)
    await _run(processor, [FakeRecord(5, _raw("C1", "64461", member), partition=1)], TP("x", 1))
    assert not _sent(producer, TOPICS.repartition)
    ((_, _, value),) = _sent(producer, "claim-edits")
    assert orjson.loads(value or b"")["source"] == {
        "topic": "claim-lines",
        "partition": 1,
        "offset": 5,
    }


async def test_applied_offsets_are_kept_per_consumed_partition_never_compared_across() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    member = _member_on(0)
    direct = FakeRecord(900, _raw("C1", "64461", member), partition=0)
    await _run(processor, [direct], TP("claim-lines", 0))
    # A forwarded line with a far smaller offset on the other topic is still applied.
    forwarded = FakeRecord(3, _raw("C2", "64462", member), topic=TOPICS.repartition, partition=0)
    await _run(processor, [forwarded], TP(TOPICS.repartition, 0))
    assert orjson.loads(table.data[member.encode()])["o"] == {"i0": 900, "r0": 3}
    # Replaying either record after a crash is recognised as applied: nothing is re-sent.
    producer.sent.clear()
    producer.messages.clear()
    await _run(processor, [direct], TP("claim-lines", 0))
    await _run(processor, [forwarded], TP(TOPICS.repartition, 0))
    assert processor.stats.replayed == 2 and not _sent(producer, "claim-edits")


@pytest.mark.parametrize(
    ("value", "key"),
    [(b"\xff" * 900_000, b"k"), (None, None), (b"", b"member"), (b'{"member_id": 7}', None)],
    ids=["oversized-binary", "null-value-and-key", "empty-value", "invalid-json-line"],
)
async def test_a_refused_record_is_dead_lettered_with_its_own_bytes_and_its_context(
    value: bytes | None, key: bytes | None
) -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    record = FakeRecord(12, value, partition=2, key=key, timestamp=1_700_000_000_000)
    assert await _run(processor, [record], TP("claim-lines", 2)) == {TP("claim-lines", 2): 13}
    ((partition, sent_key, sent_value),) = _sent(producer, TOPICS.dlq)
    assert (partition, sent_key, sent_value) == (2, key, value)  # null stays null
    context = DeadLetterHeaders.from_headers(producer.messages[0].headers or [])
    assert (context.topic, context.partition, context.offset) == ("claim-lines", 2, 12)
    assert context.reason is RejectCode.INVALID_LINE and context.stage == "VALUE_CONVERTER"
    assert context.timestamp == 1_700_000_000_000 and context.connector == "app"
    assert sum(len(k) + len(v) for k, v in producer.messages[0].headers or []) < 4096


async def test_a_line_that_would_take_its_members_state_past_the_limit_is_dead_lettered() -> None:
    producer, table = FakeProducer(), DictTable()
    limit = 8_000
    processor = fake_processor(table, producer=producer, partitions=1, member_state_max_bytes=limit)
    records = [
        FakeRecord(
            n, line(f"C{n}", 1, "64461", member_id="M1", minutes=n).model_dump_json().encode()
        )
        for n in range(120)
    ]
    for record in records:  # one batch per line: the stored size is known after each
        await _run(processor, [record], TP("claim-lines", 0))
    stored = table.data[b"M1"]
    assert len(stored) <= limit
    letters = [
        DeadLetterHeaders.from_headers(m.headers or [])
        for m in producer.messages
        if m.topic == TOPICS.dlq
    ]
    assert letters and {c.reason for c in letters} == {RejectCode.MEMBER_STATE_TOO_LARGE}
    refused = {c.offset for c in letters}
    decided = {
        orjson.loads(v or b"")["claim_id"] for t, _, v in producer.sent if t == "claim-edits"
    }
    # Every line got a decision or a dead letter, never both; refused lines left no state.
    assert decided == {f"C{n}" for n in range(120) if n not in refused}
    assert all(f'"C{n}"'.encode() not in stored for n in refused)
    # The stream goes on: a line of another member is still decided.
    other = FakeRecord(500, line("D1", 1, "64461", member_id="M2").model_dump_json().encode())
    await _run(processor, [other], TP("claim-lines", 0))
    assert b"M2" in table.data


def test_unreadable_origin_headers_leave_the_records_own_position() -> None:
    assert origin_of("r", 1, 2, 3, [(SOURCE_TOPIC, b"claim-lines")]) == ("r", 1, 2, 3)
    assert origin_of(
        "r", 1, 2, 3, [(SOURCE_TOPIC, b"\xff"), (SOURCE_PARTITION, b"0"), (SOURCE_OFFSET, b"9")]
    ) == ("r", 1, 2, 3)


async def test_new_lines_at_old_offsets_of_a_recreated_topic_are_not_taken_for_replays() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=1)
    old = FakeRecord(500, _raw("C1", "64461", "M1"))
    await _run(processor, [old], TP("claim-lines", 0))
    # claim-lines was deleted and created again: its offsets start from 0 once more.
    new = FakeRecord(3, _raw("C2", "64462", "M1"))
    await _run(processor, [new], TP("claim-lines", 0))
    decided = [
        orjson.loads(v or b"")["claim_id"] for t, _, v in producer.sent if t == "claim-edits"
    ]
    assert decided == ["C1", "C2"] and processor.stats.replayed == 0
    # The same record replayed after a crash is still recognised: nothing is sent again.
    await _run(processor, [new], TP("claim-lines", 0))
    assert processor.stats.replayed == 1 and len(_sent(producer, "claim-edits")) == 2
