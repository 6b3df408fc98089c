"""The synthetic benchmark workload: deterministic, exact in size, valid, realistic, and a fair
test of the engine (the same final decisions in any arrival order)."""

from __future__ import annotations

import gc
import random
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import orjson
import pytest

from stream_edits.engine import LineDecision
from stream_edits.jobs.check import final_decisions
from stream_edits.models import ClaimLineEvent
from stream_edits.rules.loader import load_rules
from stream_edits_dev.bench.workload import generate

RULES = load_rules()
BLOCK_FAMILY = {"64461", "64462", "64463"}
IMAGING = {"76942", "77002", "77003", "77012"}
SIZE = 20_000


@pytest.fixture(scope="module")
def workload() -> list[bytes]:
    return generate(SIZE)


@pytest.fixture(scope="module")
def documents(workload: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(event) for event in workload]


def distinct(workload: list[bytes]) -> list[dict[str, Any]]:
    """The events without their redeliveries, as documents."""
    return [orjson.loads(event) for event in dict.fromkeys(workload)]


def final(decisions: list[LineDecision]) -> dict[tuple[str, int], tuple[str, list[Any]]]:
    """Each line's final status and failed edits (code and rule row): what a payer acts on."""
    return {
        (d.claim_id, d.line_number): (
            d.status.value,
            [(e.code, e.rule_source.file, e.rule_source.row) for e in d.edits],
        )
        for d in decisions
    }


def roughly(count: int, expected: float) -> bool:
    """Within 15% (and two events) of `expected`."""
    return abs(count - expected) <= 0.15 * expected + 2


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert generate(2_000, seed=3) == generate(2_000, seed=3)
    assert generate(2_000, seed=3) != generate(2_000, seed=4)


@pytest.mark.parametrize("lines", [0, 1, 2, 3, 17, 100, 999, 5_000])
def test_it_returns_exactly_the_number_of_events_asked_for(lines: int) -> None:
    events = generate(lines)

    assert len(events) == lines
    assert all(isinstance(e, bytes) and not e.endswith(b"\n") for e in events)


def test_it_returns_exactly_that_many_events_even_with_extreme_rates() -> None:
    events = generate(500, redelivery_rate=0.3, void_rate=0.3, replacement_rate=0.3)

    assert len(events) == 500


def test_every_event_is_a_valid_claim_line_event(workload: list[bytes]) -> None:
    for event in workload:
        ClaimLineEvent.model_validate_json(event)


def test_voids_replacements_and_redeliveries_come_at_about_the_configured_rates(
    workload: list[bytes],
) -> None:
    events = distinct(workload)
    frequencies = Counter(e["claim_frequency"] for e in events)

    assert roughly(len(workload) - len(events), 0.02 * SIZE)  # redeliveries
    assert roughly(frequencies["8"], 0.01 * SIZE)
    assert roughly(frequencies["7"], 0.01 * SIZE)
    assert frequencies["1"] > 0.9 * SIZE


def test_redeliveries_are_exact_copies_arriving_after_their_original(
    workload: list[bytes],
) -> None:
    first_seen: dict[bytes, int] = {}
    copies = 0
    for position, event in enumerate(workload):
        if event in first_seen:
            assert first_seen[event] < position
            copies += 1
        else:
            first_seen[event] = position
    assert copies > 0


def test_corrections_name_an_earlier_claim_of_the_same_member(workload: list[bytes]) -> None:
    events = [ClaimLineEvent.model_validate_json(e) for e in dict.fromkeys(workload)]
    claims = {(e.member_id, e.claim_id): e for e in events if not e.is_void}
    corrections = [e for e in events if e.original_claim_id is not None]
    correcting = {(e.member_id, e.original_claim_id, e.claim_id) for e in corrections}
    retracted = Counter((member, original) for member, original, _ in correcting)

    assert corrections
    for correction in corrections:
        original = claims[(correction.member_id, correction.original_claim_id)]
        assert original.received_at < correction.received_at
    assert max(retracted.values()) == 1  # a claim is replaced or voided once at most
    for void in (e for e in corrections if e.is_void):
        assert void.model_fields_set == {
            "claim_id",
            "member_id",
            "claim_frequency",
            "original_claim_id",
            "received_at",
        }


def test_every_line_of_a_claim_shares_its_received_at_provider_and_date(
    documents: list[dict[str, Any]],
) -> None:
    seen: dict[str, tuple[str, str, str, str]] = {}
    for e in documents:
        if e["claim_frequency"] == "8":
            continue
        claim = (e["member_id"], e["received_at"], e["provider_npi"], e["date_of_service"])
        assert seen.setdefault(e["claim_id"], claim) == claim


def test_about_one_patient_day_in_eight_carries_the_block_family_in_its_usual_shapes(
    documents: list[dict[str, Any]],
) -> None:
    days: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for e in documents:
        if e["claim_frequency"] == "1":
            days[(e["member_id"], e["date_of_service"])].append(e["procedure_code"])
    block_days = [codes for codes in days.values() if BLOCK_FAMILY & set(codes)]

    assert 0.08 <= len(block_days) / len(days) <= 0.18
    assert any(codes.count("64462") >= 2 for codes in block_days)  # an MUE case
    assert any("64462" in codes and "64461" not in codes for codes in block_days)  # an orphan
    assert any("64463" in codes for codes in block_days)
    assert any(IMAGING & set(codes) for codes in block_days)
    unrelated = sum(len(codes) for codes in days.values() if not BLOCK_FAMILY & set(codes))
    assert unrelated > 0.75 * sum(len(codes) for codes in days.values())


def test_members_default_to_about_one_per_eight_lines_and_the_npis_are_several(
    documents: list[dict[str, Any]],
) -> None:
    members = {e["member_id"] for e in documents}
    providers = {e["provider_npi"] for e in documents if "provider_npi" in e}

    assert 0.5 * SIZE / 8 <= len(members) <= SIZE / 8
    assert len(providers) >= 8


def test_dates_of_service_span_about_sixty_days_of_2025_received_hours_to_days_later(
    documents: list[dict[str, Any]],
) -> None:
    lines = [e for e in documents if "date_of_service" in e]
    dates = sorted({e["date_of_service"] for e in lines})
    assert dates[0].startswith("2025-") and dates[-1].startswith("2025-")
    assert 50 <= len(dates) <= 62
    for e in lines:
        event = ClaimLineEvent.model_validate_json(orjson.dumps(e))
        assert event.date_of_service is not None
        # Received in the provider's own zone, on or after the date of service; originals
        # within three weeks, corrections later still.
        delay = event.received_at.date() - event.date_of_service
        assert delay >= timedelta(0)
        if event.original_claim_id is None:
            assert delay <= timedelta(days=21)


def test_arrival_follows_received_at_with_some_late_lines(workload: list[bytes]) -> None:
    received = [ClaimLineEvent.model_validate_json(e).received_at for e in workload]
    in_order = sum(a <= b for a, b in zip(received, received[1:], strict=False))

    assert 0.8 * len(received) < in_order < len(received) - 1


def test_the_workload_exercises_all_three_edits_and_voids(workload: list[bytes]) -> None:
    rejects: list[Any] = []
    decisions = final(final_decisions(workload, RULES, rejects))
    statuses = Counter(status for status, _ in decisions.values())
    edits = {code for _, failed in decisions.values() for code, _, _ in failed}

    assert rejects == []  # redeliveries are silent, and nothing conflicts
    assert statuses["accept"] > 0.8 * len(decisions)
    assert statuses["void"] > 0
    assert edits == {"MUE_EXCEEDED", "ADDON_WITHOUT_PRIMARY", "PTP_BUNDLED"}


@pytest.mark.parametrize("seed", [7, 11])
def test_check_gives_the_same_final_decisions_in_any_arrival_order(seed: int) -> None:
    events = generate(3_000, seed=seed)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    rejects: list[Any] = []

    in_order = final(final_decisions(events, RULES, rejects))
    any_order = final(final_decisions(shuffled, RULES, rejects))

    assert rejects == []
    assert any_order == in_order
    assert len(in_order) > 2_500
    assert {status for status, _ in in_order.values()} == {"accept", "deny", "void"}


def test_checking_a_realistic_workload_leaves_no_reference_cycles() -> None:
    # `check` pauses the cyclic collector; that is only safe while deciding creates no cycles.
    events = generate(3_000)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        final_decisions(events, RULES)
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


def test_the_module_writes_the_same_workload_as_ndjson_to_stdout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream_edits_dev.bench.workload", "--lines", "300", "--seed", "5"],
        capture_output=True,
        check=True,
        timeout=60,
    )

    assert result.stdout == b"".join(e + b"\n" for e in generate(300, seed=5))
