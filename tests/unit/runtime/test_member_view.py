"""The read model of a stored member record: a patient-day's lines and one line, restated by
the engine's read paths, equal what the processor published for them (stream-only fields
aside): rule-relevant lines, stubs, voided lines and later revisions included."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson

from stream_edits.rules.loader import load_rules
from stream_edits.runtime.processor import Processor
from stream_edits.runtime.state.claim_index import is_member_key
from stream_edits.runtime.web.member_view import MemberView, decision_json
from tests.factories import DOS, NPI_B, line
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor

RULES = load_rules()
OTHER_DAY = DOS + timedelta(days=1)


def _records(events: list[Any]) -> list[FakeRecord]:
    return [
        FakeRecord(i, e if isinstance(e, bytes) else e.model_dump_json().encode())
        for i, e in enumerate(events)
    ]


def _void(claim_id: str, original: str, member_id: str = "M1", minutes: int = 0) -> bytes:
    return orjson.dumps(
        {
            "claim_id": claim_id,
            "member_id": member_id,
            "claim_frequency": "8",
            "original_claim_id": original,
            "received_at": f"2025-03-15T10:{minutes:02d}:00+00:00",
        }
    )


EVENTS: list[Any] = [
    line("ADD", 1, "64462", minutes=5),  # add-on first: denied, then accepted (revision 2)
    line("STUB", 1, "99213", npi_=NPI_B, minutes=6),  # no rule mentions it: a stub
    line("STUB", 2, "64461", minutes=6),  # the same claim's rule-relevant line
    line("STUBV", 1, "99213", minutes=7),  # a stub, then voided (revision 2)
    line("IMG", 1, "77002", minutes=8),  # imaging beside the primary: denied, then voided
    line("PRIM", 1, "64461", minutes=0),  # the primary, received first
    _void("VOID1", "STUBV", minutes=9),
    _void("VOID2", "IMG", minutes=10),
    line("LATER", 1, "99213", dos=OTHER_DAY),  # another day: not in DOS's lines
    line("OTHER", 1, "64461", member_id="M2"),  # another member
]


async def _processed(events: list[Any]) -> tuple[DictTable, dict[tuple[str, int], dict[str, Any]]]:
    """Run the events one batch each; the table and the latest published decision per line."""
    producer, table = FakeProducer(), DictTable()
    processor: Processor = fake_processor(table, producer=producer)
    for record in _records(events):
        await processor.process_batch([record], {})
    await processor.settle()
    latest = {}
    for topic, _, value in producer.sent:
        if topic == "claim-edits":
            decision = orjson.loads(value or b"")
            latest[(decision["claim_id"], decision["line_number"])] = {
                k: v for k, v in decision.items() if k not in ("decided_at", "source")
            }
    return table, latest


async def test_a_days_lines_equal_what_was_published_stubs_and_voided_lines_included() -> None:
    table, published = await _processed(EVENTS)
    assert published[("ADD", 1)]["status"] == "accept" and published[("ADD", 1)]["revision"] == 2
    assert published[("STUBV", 1)]["status"] == "void" and published[("STUBV", 1)]["revision"] == 2
    assert published[("IMG", 1)]["status"] == "void"
    view = MemberView(RULES, "M1", table.data[b"M1"])
    day = [decision_json(d) for d in view.day(DOS)]
    expected_keys = [("ADD", 1), ("IMG", 1), ("PRIM", 1), ("STUB", 1), ("STUB", 2), ("STUBV", 1)]
    assert [(d["claim_id"], d["line_number"]) for d in day] == expected_keys
    assert day == [published[key] for key in expected_keys]
    assert [decision_json(d) for d in view.day(OTHER_DAY)] == [published[("LATER", 1)]]
    assert view.day(DOS - timedelta(days=1)) == []
    other = MemberView(RULES, "M2", table.data[b"M2"])
    assert [decision_json(d) for d in other.day(DOS)] == [published[("OTHER", 1)]]


async def test_one_line_equals_what_was_published_and_unknown_lines_are_none() -> None:
    table, published = await _processed(EVENTS)
    view = MemberView(RULES, "M1", table.data[b"M1"])
    for (claim_id, number), decision in published.items():
        member = decision["member_id"].encode()
        found = MemberView(RULES, decision["member_id"], table.data[member]).line(claim_id, number)
        assert found is not None and decision_json(found) == decision, (claim_id, number)
    # The cause as published: STUB's 64461 lost the day's unit to PRIM's, which arrived later.
    denied = decision_json(view.line("STUB", 2))  # type: ignore[arg-type]
    assert denied["edits"][0]["related_lines"] == [{"claim_id": "PRIM", "line_number": 1}]
    assert (denied["revision"], denied["changed_by"]) == (2, {"claim_id": "PRIM", "line_number": 1})
    stub = decision_json(view.line("STUBV", 1))  # type: ignore[arg-type]
    assert stub["changed_by"] == {"claim_id": "VOID1", "line_number": None}
    assert view.line("ADD", 2) is None
    assert view.line("VOID1", 1) is None  # a void event's claim holds no lines
    assert view.line("OTHER", 1) is None  # M2's claim, not M1's
    assert view.line("nothing", 1) is None


async def test_the_view_reads_without_changing_the_stored_record() -> None:
    table, _ = await _processed(EVENTS)
    stored = table.data[b"M1"]
    view = MemberView(RULES, "M1", stored)
    view.day(DOS)
    view.line("STUB", 1)
    assert view.record.to_bytes() == stored
    assert not view.record.changed_claims and not view.record.changed_days


async def test_a_day_of_stub_lines_only_is_read_from_the_claim_entries() -> None:
    # Stubs live in claim entries, rule-relevant lines in day states: a day is read from both.
    table, published = await _processed([line("S", 1, "99213"), line("S", 2, "99214")])
    view = MemberView(RULES, "M1", table.data[b"M1"])
    assert [decision_json(d) for d in view.day(DOS)] == [published[("S", 1)], published[("S", 2)]]
    assert orjson.loads(table.data[b"M1"])["d"] == {}  # no rule-relevant line: no day state
    assert [k for k in table.data if is_member_key(k)] == [b"M1"]
    assert date.fromisoformat(published[("S", 1)]["date_of_service"]) == DOS
