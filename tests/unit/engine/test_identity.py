"""Claims as payers identify them: a correction names its original by payer claim control
number or by CLM01 under its billing provider, and an unknown original is reported."""

from __future__ import annotations

from typing import Any

import pytest

from stream_edits.engine import ClaimEntry, DayState, EditEngine
from stream_edits.engine.core import number_key
from stream_edits.models import ClaimLineEvent
from tests.factories import NPI_A, NPI_B, line, void
from tests.unit.engine.helpers import run, verdicts


def of(billing: str, number: str) -> dict[str, Any]:
    return {"billing_provider": billing, "patient_control_number": number}


def original(
    claim_id: str = "P1", minutes: float = 0, billing: str = NPI_A
) -> list[ClaimLineEvent]:
    """CLM01 X1: a 64461 of 2 units (over the MUE of 1) and an office visit."""
    return [
        line(claim_id, 1, "64461", units=2, minutes=minutes, **of(billing, "X1")),
        line(claim_id, 2, "99213", minutes=minutes, **of(billing, "X1")),
    ]


def replacement(
    claim_id: str, names: str, minutes: float, billing: str = NPI_A
) -> list[ClaimLineEvent]:
    """The corrected claim keeps CLM01 X1: the 64461 now with 1 unit."""
    return [
        line(claim_id, 1, "64461", minutes=minutes, original=names, **of(billing, "X1")),
        line(claim_id, 2, "99213", minutes=minutes, original=names, **of(billing, "X1")),
    ]


@pytest.mark.parametrize("names", ["P1", "X1"], ids=["by-payer-number", "by-clm01"])
def test_a_replacement_keeping_its_clm01_voids_the_original_and_is_decided(
    engine: EditEngine, names: str
) -> None:
    events = original() + replacement("P2", names, minutes=5)

    outcomes = [engine.process(e) for e in events]

    assert all(o.rejection is None and not o.unresolved for o in outcomes)
    assert verdicts(run(EditEngine(engine.rules), events)) == {
        ("P1", 1): ("void", []),
        ("P1", 2): ("void", []),
        ("P2", 1): ("accept", []),
        ("P2", 2): ("accept", []),
    }


def test_a_chain_of_replacements_keeping_one_clm01_leaves_the_last_in_force(
    engine: EditEngine,
) -> None:
    events = original() + replacement("P2", "X1", minutes=5) + replacement("P3", "X1", minutes=9)

    final = verdicts(run(engine, events))

    assert {key: status for key, (status, _) in final.items() if status != "void"} == {
        ("P3", 1): "accept",
        ("P3", 2): "accept",
    }


def test_a_clm01_reference_reaches_only_its_billing_provider(engine: EditEngine) -> None:
    mine, theirs = original("P1"), original("Q1", billing=NPI_B)
    events = mine + theirs + replacement("P2", "X1", minutes=5)

    final = verdicts(run(engine, events))

    assert final[("P1", 1)] == ("void", [])
    assert final[("Q1", 1)] == ("deny", ["MUE_EXCEEDED"])
    assert final[("P2", 1)] == ("accept", [])


def test_a_claim_received_after_a_clm01_reference_is_not_retracted_by_it(
    engine: EditEngine,
) -> None:
    # The correction came at minute 5; a new claim reusing X1 at minute 9 stays in force.
    events = original() + replacement("P2", "X1", minutes=5) + original("P3", minutes=9)

    final = verdicts(run(engine, events))

    assert final[("P1", 1)] == ("void", [])
    assert final[("P2", 1)] == final[("P3", 2)] == ("accept", [])


def test_a_correction_before_its_original_is_reported_then_the_original_is_voided_on_arrival(
    engine: EditEngine,
) -> None:
    correction, later = replacement("P2", "X1", minutes=5), original(minutes=0)

    first = engine.process(correction[0])
    second = engine.process(correction[1])
    arrivals = [engine.process(e) for e in later]

    assert first.unresolved and not second.unresolved  # once per claim
    assert engine.resolves(correction[0])  # known once the original has come
    assert [d.status.value for o in arrivals for d in o.decisions] == ["void", "void"]


def test_a_void_naming_nothing_is_reported_and_refuses_nothing(engine: EditEngine) -> None:
    outcome = engine.process(void("V1", "X9", minutes=1, **of(NPI_A, "X9")))

    assert outcome.unresolved and outcome.rejection is None and outcome.decisions == []


def test_payer_ndjson_without_the_provider_numbers_resolves_by_claim_id_only(
    engine: EditEngine,
) -> None:
    events = [
        line("P1", 1, "99213", patient_control_number="X1"),
        line("P2", 1, "99213", minutes=5, original="X1"),
    ]

    final = verdicts(run(engine, events))

    assert final[("P1", 1)] == ("accept", [])


def test_identity_state_round_trips_and_state_stored_before_it_still_reads(
    engine: EditEngine,
) -> None:
    for event in original() + replacement("P2", "X1", minutes=5):
        engine.process(event)
    assert isinstance(engine.claims, dict) and isinstance(engine.days, dict)
    alias = engine.claims[("M1", number_key(NPI_A, "X1"))]
    entry = engine.claims[("M1", "P2")]
    [day] = engine.days.values()

    for key, state in ((number_key(NPI_A, "X1"), alias), ("P2", entry)):
        assert ClaimEntry.from_wire(state.to_wire(), key) == state
        assert state.to_wire()[-1] == state.last_day > 0  # the stream's expiry reads it so
    assert DayState.from_wire(day.to_wire()) == day
    assert (alias.holders.keys(), alias.references.keys()) == ({"P1", "P2"}, {"P2"})
    assert len(ClaimEntry().to_wire()) == 5  # no identity fields: the form stored before
    plain = [1, "P1", 1, "64461", NPI_A, 1, [], 0, False, None, 0]
    assert DayState.from_wire([1, [plain[1:]], 0]).lines[("P1", 1)].patient_control_number is None
