"""What a batch delivers, in which order, and what a failed delivery leaves behind."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from faust.types import TP

from stream_edits.runtime.checkpoint import (
    MAX_IN_FLIGHT,
    OutputsNotDelivered,
    StateNotDelivered,
)
from stream_edits.runtime.processor import Processor
from stream_edits.runtime.state.claim_index import claim_index_key
from tests.factories import line
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor

P0 = TP("claim-lines", 0)
EXPECTED = [
    ("C-addon", 1, "deny", 1),
    ("C-addon", 1, "accept", 2),
    ("C-primary", 1, "accept", 1),
    ("C-other", 1, "accept", 1),
]
# Two member records, and a claim index key per (claim, member), each written once.
STORED = {b"M1", b"M2"} | {
    claim_index_key(c, m) for c, m in [("C-addon", "M1"), ("C-primary", "M1"), ("C-other", "M2")]
}


def _batch(first_offset: int = 0) -> list[FakeRecord]:
    """A patient-day whose late primary flips an earlier add-on: two revisions of one line."""
    events = [
        line("C-addon", 1, "64462", minutes=5),
        line("C-primary", 1, "64461", minutes=0),
        line("C-other", 1, "99213", member_id="M2"),
    ]
    return [
        FakeRecord(first_offset + i, e.model_dump_json().encode()) for i, e in enumerate(events)
    ]


def _decisions(producer: FakeProducer) -> list[tuple[str, int, str, int]]:
    out = []
    for topic, _, value in producer.sent:
        if topic == "claim-edits":
            d = orjson.loads(value or b"{}")
            out.append((d["claim_id"], d["line_number"], d["status"], d["revision"]))
    return out


def _topics(producer: FakeProducer) -> list[str]:
    return [topic for topic, _, _ in producer.sent]


async def _run(processor: Processor) -> dict[TP, int]:
    committable = await processor.process_batch(_batch(), {P0: 3})
    committable.update(await processor.settle())
    return committable


async def test_state_is_delivered_and_stored_before_its_decisions_go_out() -> None:
    producer, table = FakeProducer(), DictTable()
    stored_before_decisions: list[bool] = []
    send = producer.send

    async def noting_send(topic: str, *args: object) -> object:
        if topic == "claim-edits" and not stored_before_decisions:
            stored_before_decisions.append(set(table.data) == STORED)
        return await send(topic, *args)  # type: ignore[arg-type]

    producer.send = noting_send  # type: ignore[method-assign]
    assert await _run(fake_processor(table, producer=producer)) == {P0: 3}
    assert _topics(producer) == ["members-changelog"] * 5 + ["claim-edits"] * 4
    assert stored_before_decisions == [True]
    assert _decisions(producer) == EXPECTED
    changelog = {key: value for topic, key, value in producer.sent if topic == "members-changelog"}
    assert changelog == table.data and set(table.data) == STORED
    assert table.persisted_offsets == {0: 4}  # the last changelog offset the batch reached


async def test_batches_overlap_but_each_step_waits_for_the_one_before() -> None:
    producer, table = FakeProducer(), DictTable()
    producer.hold = True  # nothing is acknowledged until released
    processor = fake_processor(table, producer=producer)
    reported: list[dict[TP, int]] = []
    processor.checkpoints.report_to(reported.append, _never_fails)
    # Neither batch waits for a delivery: both send their state at once (the second's lines
    # are redeliveries: it read the first batch's records before they were stored).
    assert await processor.process_batch(_batch(), {P0: 3}) == {}
    assert await processor.process_batch(_batch(3), {P0: 6}) == {}
    assert processor.stats.redeliveries == 3
    await asyncio.sleep(0.01)
    # No decision is sent before the first batch's state is delivered and stored; index keys
    # on their way are not written again by the second batch.
    assert _topics(producer) == ["members-changelog"] * 7 and processor.checkpoints.in_flight == 2
    assert table.data == {} and reported == []
    producer.release()  # both states
    await asyncio.sleep(0.01)
    # The first batch is stored and its decisions sent; the second's wait for them.
    assert set(table.data) == STORED and _topics(producer)[7:] == ["claim-edits"] * 4
    assert reported == []
    settling = asyncio.create_task(processor.settle())
    producer.release()  # the first batch's decisions
    await asyncio.sleep(0.01)
    assert reported == [{P0: 3}] and not settling.done()
    decisions = _topics(producer)[11:]
    assert len(decisions) >= 3 and set(decisions) == {"claim-edits"}  # the days, restated
    producer.release()
    assert await settling == {P0: 6} and reported == [{P0: 3}, {P0: 6}]
    assert processor.checkpoints.in_flight == 0


async def test_the_decisions_of_a_batch_whose_state_failed_are_never_sent() -> None:
    producer = FakeProducer()
    producer.failing_topic = "members-changelog"
    processor = fake_processor(DictTable(), producer=producer)
    processor.checkpoints.report_to(lambda offsets: None, lambda error: None)
    with pytest.raises(StateNotDelivered):
        await processor.process_batch(_batch(), {P0: 3})
        await processor.settle()
    assert "claim-edits" not in _topics(producer)


def _never_fails(error: Exception) -> None:
    raise AssertionError(f"unexpected failure: {error}")


async def test_the_decide_task_waits_only_beyond_the_batches_allowed_in_flight() -> None:
    producer = FakeProducer()
    producer.hold = True
    processor = fake_processor(DictTable(), producer=producer)
    for n in range(MAX_IN_FLIGHT):
        await processor.process_batch(_batch(3 * n), {P0: 3 * n + 3})
    one_more = asyncio.create_task(processor.process_batch(_batch(12), {P0: 15}))
    await asyncio.sleep(0.01)
    assert not one_more.done()  # its state is sent, but it waits for the oldest batch
    while not one_more.done():
        producer.release()
        await asyncio.sleep(0.001)
    assert processor.checkpoints.in_flight == MAX_IN_FLIGHT  # the oldest finished, no more
    settling = asyncio.create_task(processor.settle())
    while not settling.done():
        producer.release()
        await asyncio.sleep(0.001)
    assert (await one_more | await settling)[P0] == 15


async def test_a_failed_delivery_is_reported_while_the_decide_task_is_idle() -> None:
    producer = FakeProducer()
    producer.failing_topic = "members-changelog"
    processor = fake_processor(DictTable(), producer=producer)
    failures: list[Exception] = []
    reported: list[dict[TP, int]] = []
    processor.checkpoints.report_to(reported.append, failures.append)
    await processor.process_batch(_batch(), {P0: 3})
    await asyncio.sleep(0.01)  # nobody hands over a batch or settles
    assert [type(f) for f in failures] == [StateNotDelivered] and reported == []
    with pytest.raises(StateNotDelivered):
        await processor.process_batch(_batch(3), {P0: 6})
    with pytest.raises(StateNotDelivered):
        await processor.settle()


async def test_a_failed_state_delivery_stores_nothing_and_a_replay_decides_the_same() -> None:
    producer, table = FakeProducer(), DictTable()
    producer.failing_topic = "members-changelog"
    with pytest.raises(StateNotDelivered, match="rejected"):
        await _run(fake_processor(table, producer=producer))
    assert table.data == {} and table.persisted_offsets == {}
    # The worker crashes and restarts: the batch is replayed against the state it left.
    producer.failing_topic, producer.sent = None, []
    assert await _run(fake_processor(table, producer=producer, republish_replays=True)) == {P0: 3}
    assert _decisions(producer) == EXPECTED
    assert set(table.data) == STORED


async def test_after_a_failed_output_delivery_a_replay_restates_the_stored_decisions() -> None:
    producer, table = FakeProducer(), DictTable()
    producer.failing_topic = "claim-edits"
    with pytest.raises(OutputsNotDelivered, match="rejected"):
        await _run(fake_processor(table, producer=producer))
    assert set(table.data) == STORED  # the state went first
    # The worker crashes and restarts: the replayed records find their state applied and
    # publish the current decisions they touch, at the revisions the state holds.
    producer.failing_topic, producer.sent = None, []
    assert await _run(fake_processor(table, producer=producer, republish_replays=True)) == {P0: 3}
    latest = {(c, n): (status, revision) for c, n, status, revision in EXPECTED}
    assert {(c, n): (st, rev) for c, n, st, rev in _decisions(producer)} == latest


@pytest.mark.parametrize("republish", [False, True])
async def test_replayed_records_publish_again_only_when_told(republish: bool) -> None:
    """A replay of records the state already holds publishes the same decisions again when told
    (the worker: their outputs go out after the state, so a crash may have lost them; under
    exactly_once an abort may have taken them back); a replay from no state is never told."""
    table = DictTable()
    first = FakeProducer()
    await _run(fake_processor(table, producer=first))
    again = FakeProducer()
    await _run(fake_processor(table, producer=again, republish_replays=republish))
    latest = {(c, n): (status, revision) for c, n, status, revision in _decisions(first)}
    replayed = {(c, n): (status, revision) for c, n, status, revision in _decisions(again)}
    assert replayed == (latest if republish else {})


async def test_under_exactly_once_state_is_stored_only_once_its_transaction_commits() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, store_on_commit=True)
    # Delivered (in the open transaction): committable, so Faust commits it with the offsets.
    assert await _run(processor) == {P0: 3}
    assert _topics(producer).count("members-changelog") == 5
    assert table.data == {} and table.persisted_offsets == {}
    # The next batch reads the member from the cache, not from the store that lacks it.
    await processor.process_batch(_batch(3), {P0: 6})
    assert processor.stats.redeliveries == 3
    await processor.settle()
    processor.committed({0})
    assert set(table.data) == STORED and table.persisted_offsets == {0: 6}


async def test_a_rebalance_forgets_state_no_transaction_committed() -> None:
    table = DictTable()
    processor = fake_processor(table, store_on_commit=True)
    await _run(processor)
    processor.forget_assignment()  # the next owner restores what committed from the changelog
    processor.committed({0})
    assert table.data == {}
    await _run(processor)
    processor.committed({1})  # partition 0 is no longer held: nothing of it is stored
    assert table.data == {}
