"""Every rule and edge of the engine contract, one scenario each."""

from __future__ import annotations

from datetime import date

import orjson

from stream_edits.engine import ClaimEntry, DayState, EditEngine
from stream_edits.models import RuleSource, Status
from stream_edits.rules.tables import MueRule, PtpRule, RuleSet
from tests.factories import NPI_A, NPI_B, line, void
from tests.unit.engine.helpers import run, verdicts

ACCEPT: tuple[str, list[str]] = ("accept", [])


def test_thoracic_surgery_block_with_one_additional_site_is_paid(engine: EditEngine) -> None:
    result = verdicts(run(engine, [line("C1", 1, "64461"), line("C1", 2, "64462")]))
    assert result == {("C1", 1): ACCEPT, ("C1", 2): ACCEPT}


def test_rib_fractures_second_additional_site_line_exceeds_once_per_day(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461"), line("C1", 2, "64462"), line("C1", 3, "64462")]
    result = verdicts(run(engine, events))
    assert result[("C1", 2)] == ACCEPT
    assert result[("C1", 3)] == ("deny", ["MUE_EXCEEDED"])


def test_breast_surgery_block_with_ultrasound_guidance_bundles_the_imaging(
    engine: EditEngine,
) -> None:
    events = [line("C1", 1, "64461"), line("C1", 2, "64462"), line("C1", 3, "76942")]
    result = verdicts(run(engine, events))
    assert result[("C1", 3)] == ("deny", ["PTP_BUNDLED"])
    assert result[("C1", 1)] == result[("C1", 2)] == ACCEPT


def test_add_on_without_primary_is_denied(engine: EditEngine) -> None:
    assert verdicts(run(engine, [line("C1", 1, "64462")])) == {
        ("C1", 1): ("deny", ["ADDON_WITHOUT_PRIMARY"])
    }


def test_late_primary_flips_a_denied_add_on_to_accept_with_a_new_revision(
    engine: EditEngine,
) -> None:
    first = engine.process(line("C2", 1, "64462", minutes=30)).decisions
    assert [(d.status, d.revision) for d in first] == [(Status.DENY, 1)]
    later = engine.process(line("C1", 1, "64461", minutes=0)).decisions
    flipped = {(d.claim_id, d.line_number): (d.status, d.revision) for d in later}
    assert flipped == {("C1", 1): (Status.ACCEPT, 1), ("C2", 1): (Status.ACCEPT, 2)}


def test_voiding_the_claim_with_the_primary_denies_the_add_on_on_another_claim(
    engine: EditEngine,
) -> None:
    run(engine, [line("C1", 1, "64461"), line("C2", 1, "64462", minutes=5)])
    changed = engine.process(void("V1", "C1", minutes=60)).decisions
    result = {(d.claim_id, d.line_number): (d.status.value, d.revision) for d in changed}
    assert result == {("C1", 1): ("void", 2), ("C2", 1): ("deny", 2)}


def test_right_and_left_on_two_lines_count_two_units(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", modifiers=["RT"]), line("C1", 2, "64461", modifiers=["LT"])]
    result = verdicts(run(engine, events))
    assert result == {("C1", 1): ACCEPT, ("C1", 2): ("deny", ["MUE_EXCEEDED"])}


def test_bilateral_modifier_on_one_line_with_one_unit_is_accepted(engine: EditEngine) -> None:
    result = verdicts(run(engine, [line("C1", 1, "64461", modifiers=["50"])]))
    assert result == {("C1", 1): ACCEPT}


def test_add_on_with_more_units_than_the_limit_is_denied_whole(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461"), line("C1", 2, "64462", units=2)]
    assert verdicts(run(engine, events))[("C1", 2)] == ("deny", ["MUE_EXCEEDED"])


def test_primary_from_another_provider_does_not_support_the_add_on(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", npi_=NPI_A), line("C2", 1, "64462", npi_=NPI_B)]
    assert verdicts(run(engine, events))[("C2", 1)] == ("deny", ["ADDON_WITHOUT_PRIMARY"])


def test_each_provider_has_its_own_daily_limit(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", npi_=NPI_A), line("C2", 1, "64461", npi_=NPI_B)]
    assert verdicts(run(engine, events)) == {("C1", 1): ACCEPT, ("C2", 1): ACCEPT}


def test_primary_on_another_day_does_not_support_the_add_on(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", dos=date(2025, 3, 13)), line("C2", 1, "64462")]
    assert verdicts(run(engine, events))[("C2", 1)] == ("deny", ["ADDON_WITHOUT_PRIMARY"])


def test_another_member_is_another_group(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", member_id="M1"), line("C2", 1, "64462", member_id="M2")]
    assert verdicts(run(engine, events))[("C2", 1)] == ("deny", ["ADDON_WITHOUT_PRIMARY"])


def test_earliest_received_line_wins_the_daily_unit_whatever_the_arrival_order(
    engine: EditEngine,
) -> None:
    late_arrival = line("C1", 1, "64461", minutes=0)
    early_arrival = line("C2", 1, "64461", minutes=10)
    result = verdicts(run(engine, [early_arrival, late_arrival]))
    assert result == {("C1", 1): ACCEPT, ("C2", 1): ("deny", ["MUE_EXCEEDED"])}


def test_same_received_at_orders_by_claim_then_line(engine: EditEngine) -> None:
    result = verdicts(
        run(engine, [line("B", 2, "64461"), line("B", 1, "64461"), line("A", 9, "64461")])
    )
    assert result[("A", 9)] == ACCEPT
    assert result[("B", 1)] == result[("B", 2)] == ("deny", ["MUE_EXCEEDED"])


def test_exact_redelivery_changes_nothing(engine: EditEngine) -> None:
    event = line("C1", 1, "64461")
    assert engine.process(event).decisions
    again = engine.process(event)
    assert again.duplicate and not again.decisions and again.rejection is None


def test_redelivery_of_an_unrelated_line_changes_nothing(engine: EditEngine) -> None:
    event = line("C1", 1, "99213")
    assert engine.process(event).decisions
    assert engine.process(event).duplicate


def test_different_content_with_the_same_identity_is_a_conflict_and_the_first_stays(
    engine: EditEngine,
) -> None:
    engine.process(line("C1", 1, "64461"))
    outcome = engine.process(line("C1", 1, "64462"))
    assert outcome.rejection is not None and "conflict" in outcome.rejection.reason
    assert not outcome.decisions
    assert engine.restate_day("M1", date(2025, 3, 14))[0].procedure_code == "64461"


def test_void_before_its_claim_voids_the_lines_on_arrival(engine: EditEngine) -> None:
    assert engine.process(void("V1", "C1")).decisions == []
    result = verdicts(run(engine, [line("C1", 1, "64461"), line("C1", 2, "99213")]))
    assert result == {("C1", 1): ("void", []), ("C1", 2): ("void", [])}


def test_voided_lines_count_for_no_rule(engine: EditEngine) -> None:
    events = [void("V1", "C1"), line("C1", 1, "64461"), line("C2", 1, "64462", minutes=5)]
    assert verdicts(run(engine, events))[("C2", 1)] == ("deny", ["ADDON_WITHOUT_PRIMARY"])


def test_replacement_chain_leaves_only_the_last_claim_live(engine: EditEngine) -> None:
    events = [
        line("C3", 1, "64461", original="C2", minutes=20),
        line("A", 1, "64461"),
        line("C2", 1, "64461", original="A", minutes=10),
        line("C3", 2, "64462", original="C2", minutes=20),
    ]
    result = verdicts(run(engine, events))
    assert result == {
        ("A", 1): ("void", []),
        ("C2", 1): ("void", []),
        ("C3", 1): ACCEPT,
        ("C3", 2): ACCEPT,
    }


def test_replacement_frees_the_daily_unit_for_its_own_line(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461"), line("C2", 1, "64461", original="C1", minutes=30)]
    assert verdicts(run(engine, events)) == {("C1", 1): ("void", []), ("C2", 1): ACCEPT}


def test_void_event_redelivered_is_a_duplicate_and_another_void_id_is_harmless(
    engine: EditEngine,
) -> None:
    run(engine, [line("C1", 1, "64461")])
    assert [d.status for d in engine.process(void("V1", "C1")).decisions] == [Status.VOID]
    assert engine.process(void("V1", "C1")).duplicate
    assert engine.process(void("V2", "C1", minutes=1)).decisions == []


def test_void_reusing_a_claim_id_with_lines_is_a_conflict(engine: EditEngine) -> None:
    run(engine, [line("C1", 1, "64461")])
    outcome = engine.process(void("C1", "C0"))
    assert outcome.rejection is not None and "conflict" in outcome.rejection.reason


def test_imaging_without_a_block_is_paid(engine: EditEngine) -> None:
    assert verdicts(run(engine, [line("C1", 1, "77002")])) == {("C1", 1): ACCEPT}


def test_imaging_is_not_bypassed_by_modifier_59_when_the_indicator_is_zero(
    engine: EditEngine,
) -> None:
    events = [line("C1", 1, "64463"), line("C1", 2, "77003", modifiers=["59"])]
    assert verdicts(run(engine, events))[("C1", 2)] == ("deny", ["PTP_BUNDLED"])


def test_imaging_beside_a_denied_block_is_paid(engine: EditEngine) -> None:
    events = [line("C1", 1, "64462"), line("C1", 2, "77012")]
    assert verdicts(run(engine, events)) == {
        ("C1", 1): ("deny", ["ADDON_WITHOUT_PRIMARY"]),
        ("C1", 2): ACCEPT,
    }


def _src(table: str, row: int) -> RuleSource:
    return RuleSource(table=table, file=f"{table}.txt", row=row, effective_date=date(2016, 1, 1))


def test_indicator_one_pairs_are_bypassed_by_an_associated_modifier_on_column_two() -> None:
    rules = RuleSet.of(ptp=[PtpRule("11111", "22222", 1, "Mutually exclusive", _src("PTP", 7))])
    events = [
        line("C1", 1, "11111"),
        line("C1", 2, "22222", modifiers=["XS"]),
        line("C1", 3, "22222", modifiers=["RT"]),
    ]
    result = verdicts(run(EditEngine(rules), events))
    assert result == {("C1", 1): ACCEPT, ("C1", 2): ACCEPT, ("C1", 3): ("deny", ["PTP_BUNDLED"])}


def test_line_mue_adjudication_indicator_one_limits_each_line_not_the_day() -> None:
    rules = RuleSet.of(mue=[MueRule("33333", 2, 1, "", _src("MUE", 3))])
    events = [
        line("C1", 1, "33333", units=2),
        line("C1", 2, "33333", units=2),
        line("C1", 3, "33333", units=3),
    ]
    result = verdicts(run(EditEngine(rules), events))
    assert result == {("C1", 1): ACCEPT, ("C1", 2): ACCEPT, ("C1", 3): ("deny", ["MUE_EXCEEDED"])}


def test_dates_of_service_before_the_rows_take_effect_are_not_edited(engine: EditEngine) -> None:
    old = date(2015, 12, 31)
    events = [line("C1", 1, "64462", dos=old), line("C1", 2, "64462", dos=old)]
    assert verdicts(run(engine, events)) == {("C1", 1): ACCEPT, ("C1", 2): ACCEPT}


def test_every_edit_names_its_rule_source_and_a_rationale(engine: EditEngine) -> None:
    decision = run(engine, [line("C1", 1, "64462")])[("C1", 1)]
    (edit,) = decision.edits
    assert edit.rule_source.table == "AOC"
    assert edit.rule_source.effective_date == date(2016, 1, 1)
    assert edit.rule_source.row >= 1 and edit.rule_source.file
    assert "64461" in edit.message


def test_unknown_fields_are_accepted_but_neither_published_nor_kept_in_state(
    engine: EditEngine,
) -> None:
    bulky = "x" * 10_000
    decisions = run(
        engine, [line("C1", 1, "64461", notes=bulky), line("C1", 2, "99213", notes=bulky)]
    )
    assert {d.status.value for d in decisions.values()} == {"accept"}
    assert all("notes" not in d.to_wire() for d in decisions.values())
    stored = [c.to_wire() for c in engine.claims.values()]  # type: ignore[attr-defined]
    stored += [d.to_wire() for d in engine.days.values()]  # type: ignore[attr-defined]
    assert bulky not in orjson.dumps(stored).decode()


def test_a_redelivery_with_other_unknown_fields_is_a_conflict(engine: EditEngine) -> None:
    outcome = engine.process(line("C1", 1, "64461", notes="a"))
    assert outcome.decisions
    again = engine.process(line("C1", 1, "64461", notes="b"))
    assert again.rejection is not None and again.rejection.code.value == "conflict"


def test_unrelated_lines_keep_no_day_state(engine: EditEngine) -> None:
    run(engine, [line("C1", 1, "99213"), line("C1", 2, "36415")])
    assert dict(engine.days) == {}
    assert not engine.claims[("M1", "C1")].lines[1].in_day


def test_restate_day_reports_current_decisions_without_new_revisions(engine: EditEngine) -> None:
    run(engine, [line("C2", 1, "64462", minutes=5), line("C1", 1, "64461")])
    restated = engine.restate_day("M1", date(2025, 3, 14))
    assert [(d.claim_id, d.status.value, d.revision) for d in restated] == [
        ("C1", "accept", 1),
        ("C2", "accept", 2),
    ]
    assert engine.restate_day("M1", date(2025, 3, 14)) == restated


def test_state_survives_a_round_trip_through_json(rules: RuleSet) -> None:
    first = EditEngine(rules)
    run(first, [line("C1", 1, "64461"), line("C2", 1, "64462", minutes=5), line("C9", 1, "99213")])
    claims = {
        k: ClaimEntry.from_wire(orjson.loads(orjson.dumps(v.to_wire())), k[1])
        for k, v in first.claims.items()
    }
    days = {
        k: DayState.from_wire(orjson.loads(orjson.dumps(v.to_wire())))
        for k, v in first.days.items()
    }
    second = EditEngine(rules, claims, days)
    changed = second.process(void("V1", "C1", minutes=60)).decisions
    assert {(d.claim_id, d.status.value, d.revision) for d in changed} == {
        ("C1", "void", 2),
        ("C2", "deny", 2),
    }
    assert second.process(line("C9", 1, "99213")).duplicate


def test_restating_a_redelivered_void_reports_the_voided_claim_and_its_day(
    engine: EditEngine,
) -> None:
    run(engine, [line("C1", 1, "64461"), line("C1", 2, "99213"), line("C2", 1, "64462", minutes=5)])
    voiding = void("V1", "C1", minutes=60)
    engine.process(voiding)
    restated = {
        (d.claim_id, d.line_number): (d.status.value, d.revision)
        for d in engine.restate_event(voiding)
    }
    assert restated == {("C1", 1): ("void", 2), ("C1", 2): ("void", 2), ("C2", 1): ("deny", 2)}
