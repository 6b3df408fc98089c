"""The cache of decoded member records: bounded, least recently written out first, never a record
whose write is still on its way, and invisible in what the processor decides and stores."""

from __future__ import annotations

import orjson

from stream_edits.engine import ClaimEntry
from stream_edits.runtime.state.cache import MemberCache
from stream_edits.runtime.state.record import MemberWrite
from stream_edits_dev.bench.workload import generate
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor


def _owner(member_id: str) -> int:
    return 0


def _write(cache: MemberCache, *members: str) -> list[MemberWrite]:
    """A batch that changes each member's record; its writes (not yet stored)."""
    for number, member_id in enumerate(members):
        record = cache.record(member_id)
        record.applied["i0"] = number
        record.put_claim(f"C{number}", ClaimEntry(last_day=739_000))
        cache.mark(member_id)
    return cache.writes()


def test_the_least_recently_written_records_are_evicted_first() -> None:
    cache = MemberCache(DictTable(), _owner, capacity=2)
    cache.store(_write(cache, "A", "B"), {})
    a = cache.record("A")
    cache.store(_write(cache, "A"), {})  # A written again: B is now the oldest
    cache.store(_write(cache, "C"), {})
    assert list(cache._records) == ["A", "C"]
    assert cache.record("A") is a  # still the decoded object, not read again
    assert cache.table.get(0, b"B") is not None  # evicted from the cache, not from the table


def test_a_record_with_a_write_on_its_way_is_never_evicted() -> None:
    cache = MemberCache(DictTable(), _owner, capacity=0)
    first = _write(cache, "A")
    second = _write(cache, "B")
    b = cache.record("B")
    cache.store(first, {})  # A is stored and goes; B's write is still on its way
    assert list(cache._records) == ["B"] and cache.record("B") is b
    cache.store(second, {})
    assert cache._records == {}


def test_only_the_excess_goes_the_oldest_first() -> None:
    cache = MemberCache(DictTable(), _owner, capacity=3)
    cache.store(_write(cache, *[f"M{n}" for n in range(5)]), {})
    assert list(cache._records) == ["M2", "M3", "M4"]


async def _decide(member_cache: int, batches: list[list[bytes]]) -> tuple[list, dict]:
    table, producer = DictTable(), FakeProducer()
    processor = fake_processor(table, producer=producer, member_cache=member_cache)
    offset = 0
    for batch in batches:
        records = [FakeRecord(offset + i, value) for i, value in enumerate(batch)]
        offset += len(batch)
        await processor.process_batch(records, {})
    await processor.settle()
    decisions = []
    for message in producer.messages:
        if message.topic == "claim-edits":
            value = orjson.loads(message.value or b"")
            value.pop("decided_at")
            decisions.append((message.key, value))
    return decisions, table.data


async def test_what_is_decided_and_stored_is_the_same_with_any_cache() -> None:
    lines = generate(1500, seed=11, members=40)
    batches = [lines[i : i + 97] for i in range(0, len(lines), 97)]
    without = await _decide(0, batches)
    assert len(without[0]) >= 1500
    for capacity in (1, 7, 10_000):
        assert await _decide(capacity, batches) == without, capacity
