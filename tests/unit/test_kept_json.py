"""Kept JSON: orjson's bytes, in an object no larger than they are."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from stream_edits.kafka.topics import line_key
from stream_edits.kept_json import dumps_kept
from stream_edits.runtime.state.record import MemberRecord

DECISION = {
    "claim_id": "2025123456789",
    "line_number": 1,
    "status": "deny",
    "edits": [{"code": "MUE", "rule_id": "mue-64462"}],
    "source": {"topic": "claim-lines", "partition": 3, "offset": 12345},
}


def _allocated_per_object(make: Callable[[], bytes]) -> float:
    """Bytes allocated per object kept, over 500 objects made by `make()`."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(500)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == 500
    return (after - before - 500 * 8) / 500  # less the list's pointers


@pytest.mark.parametrize("value", [DECISION, ["C1", 1], {"o": {"i0": 7}, "c": {}, "d": {}}])
def test_same_bytes_as_orjson(value: object) -> None:
    assert dumps_kept(value) == orjson.dumps(value)
    assert type(dumps_kept(value)) is bytes


def test_a_kept_document_takes_about_its_length() -> None:
    length = len(orjson.dumps(DECISION))
    kept = _allocated_per_object(lambda: dumps_kept(DECISION))
    assert kept < length + 100, f"{kept:.0f} bytes held for a {length}-byte document"


def test_keys_and_member_records_are_right_sized() -> None:
    assert _allocated_per_object(lambda: line_key("2025123456789", 1)) < 100
    record = MemberRecord({"o": {"i0": 1}, "c": {}, "d": {}})
    size = len(record.to_bytes())
    assert _allocated_per_object(record.to_bytes) < size + 100
