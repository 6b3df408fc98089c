"""The chaos verifier on synthetic data: latest decisions, missing, wrong and duplicate counting,
dead letters by source offset, the group's lag, and the check of the suite's own input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from stream_edits.models import RejectCode, Rejection, SourceOffset
from stream_edits.rules.loader import load_rules
from stream_edits.runtime.dead_letters import dead_letter_headers
from stream_edits_dev.chaos.inputs import Kind, Record
from stream_edits_dev.chaos.verify import (
    Deliveries,
    HarnessError,
    Ledger,
    expected_verdicts,
    gaps,
    score,
)
from tests.factories import NPI_A

TOPIC = "claim-lines"


def decision(
    claim: str, line: int, revision: int, status: str = "accept", *codes: str, offset: int = 1
) -> bytes:
    doc: dict[str, Any] = {
        "claim_id": claim,
        "line_number": line,
        "member_id": "M1",
        "date_of_service": "2025-06-02",
        "procedure_code": "64461",
        "status": status,
        "edits": [{"code": code, "message": "m"} for code in codes],
        "revision": revision,
        "source": {"topic": TOPIC, "partition": 0, "offset": offset},
    }
    return orjson.dumps(doc)


def headers(
    partition: int, offset: int, topic: str = TOPIC, code: RejectCode = RejectCode.INVALID_LINE
) -> list[tuple[str, bytes]]:
    source = SourceOffset(topic=topic, partition=partition, offset=offset)
    return dead_letter_headers(source, 0, Rejection(reason="malformed JSON", code=code), "app")


def claim_line(claim: str) -> bytes:
    return orjson.dumps(
        {
            "claim_id": claim,
            "line_number": 1,
            "member_id": "M1",
            "provider_npi": NPI_A,
            "date_of_service": "2025-06-02",
            "procedure_code": "64461",
            "received_at": "2025-06-03T09:00:00+00:00",
        }
    )


def test_the_latest_decision_is_the_highest_revision_whatever_the_reading_order() -> None:
    ledger = Ledger()
    ledger.add_decision(decision("C1", 1, 2, "deny", "MUE_EXCEEDED"))
    ledger.add_decision(decision("C1", 1, 1, "accept"))  # an older revision re-published late
    assert ledger.latest[("C1", 1)] == (2, ("deny", ("MUE_EXCEEDED",)))
    ledger.add_decision(decision("C1", 1, 3, "void"))
    assert ledger.latest[("C1", 1)] == (3, ("void", ()))


def test_a_revision_read_again_with_another_verdict_or_below_a_higher_one_is_counted() -> None:
    ledger = Ledger()
    ledger.add_decision(decision("C1", 1, 1, "deny", "ADDON_WITHOUT_PRIMARY"))
    ledger.add_decision(decision("C1", 1, 2, "accept"))
    ledger.add_decision(decision("C1", 1, 2, "accept"))  # the same revision, the same verdict
    assert (ledger.conflicts, ledger.regressions) == (0, 0)
    # A replay from older state: revision 1 again, with another verdict, after revision 2.
    ledger.add_decision(decision("C1", 1, 1, "deny", "MUE_EXCEEDED"))
    assert (ledger.duplicates, ledger.conflicts, ledger.regressions) == (2, 1, 1)
    found = score(1, {}, ledger, [], set())
    assert (found.conflicts, found.regressions) == (1, 1)


def test_repeated_line_revisions_are_counted_once_each_and_tombstones_and_junk_are_not() -> None:
    ledger = Ledger()
    for value in [decision("C1", 1, 1), decision("C1", 1, 1), decision("C1", 1, 1)]:
        ledger.add_decision(value)
    ledger.add_decision(decision("C1", 1, 2))  # a new revision: no duplicate
    ledger.add_decision(decision("C2", 1, 1))  # same revision, other line: no duplicate
    ledger.add_decision(None)
    ledger.add_decision(b"not a decision")
    ledger.add_decision(b'{"claim_id": "C3"}')
    assert ledger.duplicates == 2
    assert ledger.decisions == 5
    assert ledger.unreadable == 2


def test_a_duplicate_with_the_first_records_source_is_a_replay_else_a_restatement() -> None:
    ledger = Ledger()
    ledger.add_decision(decision("C1", 1, 1, offset=10))
    ledger.add_decision(decision("C1", 1, 1, offset=10))  # the same event published again
    ledger.add_decision(decision("C1", 1, 1, offset=99))  # restated by a redelivery
    ledger.add_decision(decision("C1", 1, 1, offset=10))
    assert (ledger.duplicates, ledger.replayed) == (3, 2)
    assert score(1, {}, ledger, [], set()).replayed == 2


def test_score_counts_missing_and_wrong_lines_against_check() -> None:
    ledger = Ledger()
    ledger.add_decision(decision("C1", 1, 1, "accept"))
    ledger.add_decision(decision("C2", 1, 1, "deny", "MUE_EXCEEDED", "PTP_BUNDLED"))
    ledger.add_decision(decision("C3", 1, 1, "accept"))
    ledger.add_decision(decision("C9", 1, 1, "accept"))  # a line check does not decide
    expected = {
        ("C1", 1): ("accept", ()),
        ("C2", 1): ("deny", ("PTP_BUNDLED", "MUE_EXCEEDED")),  # the edit order differs
        ("C3", 1): ("deny", ("MUE_EXCEEDED",)),
        ("C4", 1): ("accept", ()),  # never decided
        ("C4", 2): ("accept", ()),
    }
    found = score(10, expected, ledger, [], set())
    assert (found.missing, found.wrong) == (2, 3)
    assert not found.clean
    assert found.records == 10 and found.expected == 5
    assert "C3#1: check deny MUE_EXCEEDED, read accept" in found.examples
    assert "C4#1: check accept, read -" in found.examples


def test_score_is_clean_when_every_latest_decision_is_checks() -> None:
    ledger = Ledger()
    ledger.add_decision(decision("C1", 1, 1, "accept"))
    ledger.add_decision(decision("C1", 1, 2, "deny", "ADDON_WITHOUT_PRIMARY"))
    ledger.add_decision(decision("C1", 1, 2, "deny", "ADDON_WITHOUT_PRIMARY"))
    expected = {("C1", 1): ("deny", ("ADDON_WITHOUT_PRIMARY",))}
    assert not score(2, expected, ledger, [(0, 5)], set()).clean  # its dead letter is not read
    ledger.add_dead_letter(headers(0, 5), b"{", TOPIC)
    found = score(2, expected, ledger, [(0, 5)], set())
    assert found.clean, found
    assert found.duplicates == 1


def test_every_invalid_delivery_needs_a_dead_letter_at_its_source_offset() -> None:
    ledger = Ledger()
    ledger.add_dead_letter(headers(1, 7), None, TOPIC)
    ledger.add_dead_letter(headers(2, 7), b"", TOPIC)
    ledger.add_dead_letter(headers(3, 7, topic="other-topic"), b"", TOPIC)
    ledger.add_dead_letter([("unrelated", b"1")], b"", TOPIC)
    found = score(4, {}, ledger, [(1, 7), (2, 7), (3, 7), (1, 8)], set())
    assert found.invalid == 4
    assert found.dead_letters_missing == 2  # (3, 7) came from another topic, (1, 8) never
    assert ledger.foreign_dead_letters == 2
    assert "no dead letter for claim-lines[3]@7" in found.examples
    assert not found.clean


def test_a_dead_letter_of_a_valid_line_is_wrong() -> None:
    ledger = Ledger()
    ledger.add_dead_letter(headers(0, 1), b"junk", TOPIC)  # at a valid record's offset
    ledger.add_dead_letter(headers(0, 2), claim_line("C7"), TOPIC)  # holds a valid line
    ledger.add_dead_letter(headers(0, 3), b"junk", TOPIC)
    found = score(3, {}, ledger, [(0, 3)], valid_sources={(0, 1)})
    assert found.dead_letters_wrong == 2
    assert found.dead_letters_missing == 0
    assert not found.clean


def test_an_unresolved_reference_notice_on_a_valid_line_is_not_wrong() -> None:
    ledger = Ledger()
    notice = headers(0, 1, code=RejectCode.UNRESOLVED_REFERENCE)
    ledger.add_dead_letter(notice, claim_line("C7"), TOPIC)
    found = score(1, {}, ledger, [], valid_sources={(0, 1)})
    assert (found.dead_letters_wrong, found.clean) == (0, True)


def test_lag_counts_records_past_the_committed_offset() -> None:
    p0, p1, r0 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1), TopicPartition("rep", 0)
    ends = {p0: 10, p1: 5, r0: 3}
    assert gaps(ends, {p0: 10, p1: 5, r0: 3}) == {p0: 0, p1: 0, r0: 0}
    assert gaps(ends, {p0: 8, p1: -1}) == {p0: 2, p1: 5, r0: 3}  # no commit or -1: none
    assert gaps(ends, {p0: 12, p1: 5, r0: 3})[p0] == 0


def test_deliveries_separate_valid_and_invalid_records_and_keep_every_copy() -> None:
    deliveries = Deliveries()
    good, bad = Record(0, claim_line("C1"), Kind.LINE, "keyed"), Record(1, None, Kind.NULL, "x")
    deliveries.add(good, 0, 10)
    deliveries.add(bad, 2, 4)
    deliveries.add(bad, 3, 9)  # sent again after a failed send
    assert deliveries.sources(valid=True) == [(0, 10)]
    assert deliveries.sources(valid=False) == [(2, 4), (3, 9)]


def test_expected_verdicts_are_checks_and_a_mislabelled_record_stops_the_suite() -> None:
    rules = load_rules()
    records = [
        Record(0, claim_line("C1"), Kind.LINE, "keyed"),
        Record(1, b"{oops", Kind.INVALID_JSON, "keyed"),
        Record(2, None, Kind.NULL, "keyed"),
        Record(3, b"", Kind.EMPTY, "keyed"),
    ]
    assert expected_verdicts(records, rules) == {("C1", 1): ("accept", ())}
    with pytest.raises(HarnessError):
        expected_verdicts([*records, Record(4, b"[]", Kind.LINE, "keyed")], rules)
    with pytest.raises(HarnessError):
        expected_verdicts([Record(0, claim_line("C2"), Kind.INVALID_LINE, "keyed")], rules)
