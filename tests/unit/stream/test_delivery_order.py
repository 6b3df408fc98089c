"""What a batch delivers, in which order, and what a failed delivery leaves behind."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import line
from tests.unit.stream.fakes import DictTable, FakeProducer, FakeRecord, fake_processor


def _batch() -> list[FakeRecord]:
    """A patient-day whose late primary flips an earlier add-on: two revisions of one line."""
    events = [
        line("C-addon", 1, "64462", minutes=5),
        line("C-primary", 1, "64461", minutes=0),
        line("C-other", 1, "99213", member_id="M2"),
    ]
    return [FakeRecord(i, e.model_dump_json().encode()) for i, e in enumerate(events)]


def _decisions(producer: FakeProducer) -> list[tuple[str, int, str, int]]:
    out = []
    for topic, _, value in producer.sent:
        if topic == "claim-edits":
            d = orjson.loads(value or b"{}")
            out.append((d["claim_id"], d["line_number"], d["status"], d["revision"]))
    return out


async def test_decisions_go_out_before_state_and_state_is_stored_after_its_changelog() -> None:
    producer, table = FakeProducer(), DictTable()
    await fake_processor(table, producer=producer).process_batch(_batch())
    topics = [topic for topic, _, _ in producer.sent]
    assert topics == ["claim-edits"] * 4 + ["members-changelog"] * 2
    assert _decisions(producer) == [
        ("C-addon", 1, "deny", 1),
        ("C-addon", 1, "accept", 2),
        ("C-primary", 1, "accept", 1),
        ("C-other", 1, "accept", 1),
    ]
    changelog = {key: value for topic, key, value in producer.sent if topic == "members-changelog"}
    assert changelog == table.data and set(table.data) == {b"M1", b"M2"}
    assert table.persisted_offsets == {0: 1}  # the last changelog offset the batch reached


@pytest.mark.parametrize("failing", ["claim-edits", "members-changelog"])
async def test_a_failed_delivery_raises_stores_nothing_and_a_replay_decides_the_same(
    failing: str,
) -> None:
    producer, table = FakeProducer(), DictTable()
    producer.failing_topic = failing
    processor = fake_processor(table, producer=producer)
    with pytest.raises(OSError, match="rejected"):
        await processor.process_batch(_batch())
    assert table.data == {} and table.persisted_offsets == {}
    # The worker crashes and restarts: the batch is replayed against the state it left.
    producer.failing_topic, producer.sent = None, []
    await fake_processor(table, producer=producer).process_batch(_batch())
    assert _decisions(producer) == [
        ("C-addon", 1, "deny", 1),
        ("C-addon", 1, "accept", 2),
        ("C-primary", 1, "accept", 1),
        ("C-other", 1, "accept", 1),
    ]
    assert set(table.data) == {b"M1", b"M2"}
