"""State expiry by stream time: idle members are dropped, active ones kept, replays agree."""

from __future__ import annotations

from datetime import date, timedelta

import orjson

from stream_edits.runtime.processor import Processor
from stream_edits.runtime.state.expiry import ExpiryIndex
from tests.factories import T0, line
from tests.unit.runtime.fakes import DictTable, FakeRecord, fake_processor


def _history() -> list[FakeRecord]:
    """Member IDLE bills once; member BUSY bills every week for 20 weeks after."""
    events = [line("C-idle", 1, "64461", member_id="IDLE", dos=T0.date())]
    for week in range(20):
        when = T0 + timedelta(weeks=week)
        events.append(
            line(
                f"C-busy-{week}",
                1,
                "64461",
                member_id="BUSY",
                dos=when.date(),
                minutes=week * 7 * 24 * 60,
            )
        )
    return [FakeRecord(i, e.model_dump_json().encode()) for i, e in enumerate(events)]


async def _run(
    batches: list[list[FakeRecord]], horizon_days: int
) -> tuple[dict[bytes, bytes], Processor]:
    table = DictTable()
    processor = fake_processor(table, horizon_days)
    for batch in batches:
        await processor.process_batch(batch, {})
    await processor.settle()
    return table.data, processor


async def test_idle_members_expire_and_active_ones_keep_only_recent_days() -> None:
    table, processor = await _run([_history()], horizon_days=30)
    assert b"IDLE" not in table
    busy = orjson.loads(table[b"BUSY"])
    kept = sorted(date.fromisoformat(d) for d in busy["d"])
    assert kept and kept[0] > T0.date() + timedelta(weeks=10)
    assert processor.stats.expired_keys > 0


async def test_nothing_expires_within_the_horizon() -> None:
    table, processor = await _run([_history()], horizon_days=400)
    assert b"IDLE" in table
    assert len(orjson.loads(table[b"BUSY"])["d"]) == 20
    assert processor.stats.expired_keys == 0


async def test_expiry_does_not_depend_on_batch_boundaries() -> None:
    events = _history()
    whole, _ = await _run([events], horizon_days=30)
    one_by_one, _ = await _run([[e] for e in events], horizon_days=30)
    pairs, _ = await _run([events[i : i + 2] for i in range(0, len(events), 2)], horizon_days=30)
    assert whole == one_by_one == pairs


def test_the_index_returns_members_filed_before_the_cutoff_once() -> None:
    index = ExpiryIndex()
    index.file(0, "A", 10)
    index.file(0, "A", 5)  # touched state of an earlier day: filed earlier
    index.file(0, "A", 20)  # later: the earlier filing stands
    index.file(0, "B", 30)
    assert index.due(0, 6) == ["A"]
    assert index.due(0, 100) == ["B"]
    assert index.due(1, 100) == []
