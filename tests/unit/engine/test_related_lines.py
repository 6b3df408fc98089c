"""A denial names what caused it (related_lines) and a revision the arrival that made it
(changed_by): hand-worked examples for each edit, state kept across restarts, and invariants for
any lines in any order."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings

from stream_edits.engine import ClaimEntry, DayState, EditEngine, LineDecision
from stream_edits.engine.state import WIRE_VERSION
from stream_edits.models import ClaimLineEvent, Decision, RuleSource
from stream_edits.rules.loader import load_rules
from stream_edits.rules.tables import MueRule, PtpRule, RuleSet
from tests.factories import DOS, NPI_B, line, void
from tests.unit.engine.helpers import causes, run
from tests.unit.test_fuzzing import valid_days

RULES = load_rules()


def _src(table: str, row: int) -> RuleSource:
    return RuleSource(table=table, file=f"{table}.txt", row=row, effective_date=date(2016, 1, 1))


# -- MUE ----------------------------------------------------------------------------------------


def test_an_mue_denial_names_the_accepted_line_that_used_the_days_unit(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461"), line("C2", 1, "64461", minutes=5)]
    assert causes(run(engine, events)) == {
        ("C1", 1): ("accept", []),
        ("C2", 1): ("deny", [("MUE_EXCEEDED", [("C1", 1)])]),
    }


def test_a_line_whose_own_units_pass_the_limit_names_no_related_line(engine: EditEngine) -> None:
    assert causes(run(engine, [line("C1", 1, "64461", units=2)])) == {
        ("C1", 1): ("deny", [("MUE_EXCEEDED", [])])
    }


def test_a_date_of_service_mue_names_every_line_whose_units_it_counted() -> None:
    # MAI 2, 3 units a day: 1 + 1 accepted (2 consumed), then 2 more would make 4.
    rules = RuleSet.of(mue=[MueRule("33333", 3, 2, "", _src("MUE", 4))])
    events = [
        line("C1", 1, "33333"),
        line("C2", 1, "33333", minutes=1),
        line("C3", 1, "33333", units=2, minutes=2),
        line("C4", 1, "33333", units=1, minutes=3),  # fits: 2 + 1 = 3
    ]
    assert causes(run(EditEngine(rules), events)) == {
        ("C1", 1): ("accept", []),
        ("C2", 1): ("accept", []),
        ("C3", 1): ("deny", [("MUE_EXCEEDED", [("C1", 1), ("C2", 1)])]),
        ("C4", 1): ("accept", []),
    }


def test_a_per_line_mue_denial_names_no_line() -> None:
    # MAI 1 limits each line alone: other lines of the day are no part of the cause.
    rules = RuleSet.of(mue=[MueRule("33333", 2, 1, "", _src("MUE", 3))])
    events = [line("C1", 1, "33333", units=2), line("C1", 2, "33333", units=3)]
    assert causes(run(EditEngine(rules), events))[("C1", 2)] == ("deny", [("MUE_EXCEEDED", [])])


# -- PTP ----------------------------------------------------------------------------------------


def test_a_ptp_denial_names_the_column_one_line_it_was_bundled_into(engine: EditEngine) -> None:
    events = [line("C1", 1, "64463"), line("C2", 1, "77002", minutes=5)]
    assert causes(run(engine, events))[("C2", 1)] == ("deny", [("PTP_BUNDLED", [("C1", 1)])])


def test_beside_several_blocks_the_imaging_names_the_first_accepted_of_the_first_pair(
    engine: EditEngine,
) -> None:
    # 64461 is denied (2 units over 1 a day), so the pair 64461/76942 does not apply; the next
    # pair's column one, 64463, has two lines: the first accepted one in the walk is named.
    events = [
        line("C1", 1, "64461", units=2),
        line("C1", 2, "64463", minutes=3, modifiers=["RT"]),
        line("C1", 3, "64463", minutes=1),
        line("C1", 4, "76942"),
    ]
    result = causes(run(engine, events))
    assert result[("C1", 3)] == ("accept", [])
    assert result[("C1", 2)] == ("deny", [("MUE_EXCEEDED", [("C1", 3)])])
    assert result[("C1", 4)] == ("deny", [("PTP_BUNDLED", [("C1", 3)])])


def test_beside_two_accepted_column_one_lines_the_first_in_the_walk_is_named() -> None:
    rules = RuleSet.of(
        ptp=[PtpRule("11111", "22222", 0, "Standards of medical practice", _src("PTP", 2))]
    )
    events = [
        line("C1", 1, "11111", minutes=5),
        line("C2", 1, "11111", minutes=1),
        line("C3", 1, "22222"),
    ]
    result = causes(run(EditEngine(rules), events))
    assert result[("C1", 1)] == result[("C2", 1)] == ("accept", [])
    assert result[("C3", 1)] == ("deny", [("PTP_BUNDLED", [("C2", 1)])])


# -- add-on -------------------------------------------------------------------------------------


def test_an_add_on_alone_names_no_primary(engine: EditEngine) -> None:
    assert causes(run(engine, [line("C1", 1, "64462")])) == {
        ("C1", 1): ("deny", [("ADDON_WITHOUT_PRIMARY", [])])
    }


def test_an_add_on_names_the_primaries_considered_none_accepted(engine: EditEngine) -> None:
    events = [
        line("C1", 1, "64461", units=2),  # denied by its MUE
        line("C2", 1, "64461", units=3, minutes=2),  # denied by its MUE
        line("C3", 1, "64462", minutes=1),
        line("C4", 1, "64461", npi_=NPI_B),  # another provider: not considered
    ]
    result = causes(run(engine, events))
    assert result[("C3", 1)] == ("deny", [("ADDON_WITHOUT_PRIMARY", [("C1", 1), ("C2", 1)])])


def test_an_add_on_denied_twice_names_each_edits_own_cause(engine: EditEngine) -> None:
    events = [line("C1", 1, "64462"), line("C2", 1, "64462", minutes=5)]
    result = causes(run(engine, events))
    assert result[("C2", 1)] == ("deny", [("ADDON_WITHOUT_PRIMARY", [])])
    # The first 64462 is denied too, so it consumed no unit: only the add-on edit applies.
    assert result[("C1", 1)] == ("deny", [("ADDON_WITHOUT_PRIMARY", [])])


def test_voided_primaries_are_not_considered(engine: EditEngine) -> None:
    events = [line("C1", 1, "64461", units=2), line("C2", 1, "64462", minutes=1)]
    run(engine, events)
    changed = {(d.claim_id, d.line_number): d for d in engine.process(void("V1", "C1")).decisions}
    assert causes(changed)[("C2", 1)] == ("deny", [("ADDON_WITHOUT_PRIMARY", [])])


# -- revisions and their cause ------------------------------------------------------------------


def test_a_change_of_cause_is_a_new_revision_naming_the_line_that_caused_it(
    engine: EditEngine,
) -> None:
    run(engine, [line("C2", 1, "64461", minutes=10), line("C3", 1, "76942", minutes=20)])
    earlier = engine.process(line("C1", 1, "64461", minutes=0)).decisions
    changed = {(d.claim_id, d.line_number): d for d in earlier}
    assert causes(changed) == {
        ("C1", 1): ("accept", []),
        ("C2", 1): ("deny", [("MUE_EXCEEDED", [("C1", 1)])]),
        ("C3", 1): ("deny", [("PTP_BUNDLED", [("C1", 1)])]),  # was bundled into C2
    }
    assert {k: (d.revision, d.changed_by) for k, d in changed.items()} == {
        ("C1", 1): (1, ("C1", 1)),
        ("C2", 1): (2, ("C1", 1)),
        ("C3", 1): (2, ("C1", 1)),
    }


def test_a_void_causes_revisions_with_no_line_number(engine: EditEngine) -> None:
    run(engine, [line("C1", 1, "64461"), line("C1", 2, "99213"), line("C2", 1, "64462")])
    changed = engine.process(void("V1", "C1", minutes=60)).decisions
    assert {(d.claim_id, d.line_number): d.changed_by for d in changed} == {
        ("C1", 1): ("V1", None),
        ("C1", 2): ("V1", None),  # a stub: a line of a code no rule mentions
        ("C2", 1): ("V1", None),
    }


def test_a_replacement_line_causes_the_originals_void(engine: EditEngine) -> None:
    run(engine, [line("C1", 1, "64461"), line("C1", 2, "99213")])
    changed = engine.process(line("C2", 1, "64461", original="C1", minutes=30)).decisions
    assert {(d.claim_id, d.line_number): (d.status.value, d.changed_by) for d in changed} == {
        ("C1", 1): ("void", ("C2", 1)),
        ("C1", 2): ("void", ("C2", 1)),
        ("C2", 1): ("accept", ("C2", 1)),
    }


def test_the_wire_form_carries_related_lines_and_changed_by_as_the_output_model(
    engine: EditEngine,
) -> None:
    run(engine, [line("C1", 1, "64461")])
    (denied,) = engine.process(line("C2", 1, "64461", minutes=5)).decisions
    wire = orjson.loads(orjson.dumps(denied.to_wire()))
    assert wire["edits"][0]["related_lines"] == [{"claim_id": "C1", "line_number": 1}]
    assert wire["changed_by"] == {"claim_id": "C2", "line_number": 1}
    assert Decision.model_validate(wire).changed_by is not None


# -- state across restarts ----------------------------------------------------------------------


def _round_trip(engine: EditEngine) -> EditEngine:
    claims = {
        k: ClaimEntry.from_wire(orjson.loads(orjson.dumps(v.to_wire())), k[1])
        for k, v in engine.claims.items()  # type: ignore[attr-defined]
    }
    days = {
        k: DayState.from_wire(orjson.loads(orjson.dumps(v.to_wire())))
        for k, v in engine.days.items()  # type: ignore[attr-defined]
    }
    return EditEngine(engine.rules, claims, days)


def _restated(engine: EditEngine) -> dict[tuple[str, int], LineDecision]:
    return {(d.claim_id, d.line_number): d for d in engine.restate_day("M1", DOS)}


def test_restating_after_a_restart_gives_the_published_causes(engine: EditEngine) -> None:
    events = [line("C2", 1, "64461", minutes=10), line("C3", 1, "76942"), line("C1", 1, "64461")]
    published = run(engine, events)
    restarted = _round_trip(engine)
    assert _restated(restarted) == published
    stub = run(restarted, [line("C9", 1, "99213"), void("V9", "C9", minutes=9)])[("C9", 1)]
    again = _round_trip(restarted).claims.get(("M1", "C9"))
    assert again is not None and again.lines[1].changed_by == stub.changed_by == ("V9", None)


def _as_version_1(engine: EditEngine) -> EditEngine:
    """The engine's state as version 1 wrote it: no causes, signatures without related lines."""
    claims: dict[tuple[str, str], ClaimEntry] = {}
    for key, entry in engine.claims.items():  # type: ignore[attr-defined]
        wire = orjson.loads(orjson.dumps(entry.to_wire()))
        lines = {n: raw[:6] for n, raw in wire[1].items()}
        claims[key] = ClaimEntry.from_wire([1, lines, *wire[2:]], key[1])
    days: dict[tuple[str, date], DayState] = {}
    for key, day in engine.days.items():  # type: ignore[attr-defined]
        wire = orjson.loads(orjson.dumps(day.to_wire()))
        old: list[Any] = []
        for raw in wire[1]:
            status, edits = raw[8]
            old.append([*raw[:8], [status, [edit[:3] for edit in edits]], raw[9]])
        days[key] = DayState.from_wire([1, old, wire[2]])
    return EditEngine(engine.rules, claims, days)


def test_version_1_state_keeps_its_revisions_and_knows_a_first_revisions_cause(
    engine: EditEngine,
) -> None:
    assert WIRE_VERSION == 2
    run(
        engine, [line("C2", 1, "64461", minutes=10), line("C1", 1, "64461"), line("C3", 1, "76942")]
    )
    upgraded = _as_version_1(engine)
    before = _restated(upgraded)
    assert {k: (d.revision, d.changed_by) for k, d in before.items()} == {
        ("C1", 1): (1, ("C1", 1)),
        ("C2", 1): (2, None),  # made by C1's arrival, which version 1 did not keep
        ("C3", 1): (1, ("C3", 1)),
    }
    # A line arriving in the day re-decides it: the unchanged denials get no new revision for
    # the related lines version 1 did not keep, and name them from now on.
    (new,) = upgraded.process(line("C5", 1, "77002", minutes=30)).decisions
    assert (new.claim_id, new.revision, new.changed_by) == ("C5", 1, ("C5", 1))
    after = _restated(upgraded)
    assert {k: after[k].revision for k in before} == {k: d.revision for k, d in before.items()}
    assert causes(after)[("C2", 1)] == ("deny", [("MUE_EXCEEDED", [("C1", 1)])])
    assert causes(after)[("C5", 1)] == ("deny", [("PTP_BUNDLED", [("C1", 1)])])


def test_version_1_forms_with_pass_through_fields_are_read_with_what_is_known_of_causes() -> None:
    sig = ["deny", [["MUE_EXCEEDED", "mue.csv", 8]]]
    day = DayState.from_wire(
        [1, [["C2", 1, "64461", "1234567893", 1, [], 5, {"x": 1}, False, sig, 2]], 739324]
    )
    (kept,) = day.lines.values()
    assert (kept.claim_id, kept.voided, kept.signature, kept.revision) == ("C2", False, sig, 2)
    assert kept.changed_by is None  # a second revision: its cause was not kept
    entry = ClaimEntry.from_wire(
        [1, {"1": ["fp1", 739324, "99213", "1234567893", "accept", 1, {"x": 1}]}, False, None, 0],
        "C9",
    )
    stub = entry.lines[1]
    assert (stub.code, stub.status, stub.revision, stub.changed_by) == (
        "99213",
        "accept",
        1,
        ("C9", 1),
    )
    again = ClaimEntry.from_wire(orjson.loads(orjson.dumps(entry.to_wire())), "C9")
    assert again.lines[1].changed_by == ("C9", 1) and again.to_wire()[0] == WIRE_VERSION


# -- invariants ---------------------------------------------------------------------------------


def _order(e: ClaimLineEvent) -> tuple[Any, str, int]:
    assert e.line_number is not None
    return e.received_at, e.claim_id, e.line_number


@given(valid_days())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_related_line_exists_in_the_same_group_and_explains_the_denial(
    events: list[ClaimLineEvent],
) -> None:
    final = run(EditEngine(RULES), events)
    lines = {(e.claim_id, e.line_number): e for e in events if not e.is_void}
    group_of = {k: (e.member_id, e.date_of_service, e.provider_npi) for k, e in lines.items()}
    groups: dict[Any, list[ClaimLineEvent]] = defaultdict(list)
    for key, e in lines.items():
        if final[key].status.value != "void":
            groups[group_of[key]].append(e)
    for key, decision in final.items():
        e = lines[key]
        assert e.procedure_code is not None and e.date_of_service is not None
        for edit in decision.edits:
            related = [(r.claim_id, r.line_number) for r in edit.related_lines]
            assert len(set(related)) == len(related)
            for ref in related:
                assert ref in lines and ref != key
                assert group_of[ref] == group_of[key]
            statuses = {final[ref].status.value for ref in related}
            others = [o for o in groups[group_of[key]] if o is not e]
            if edit.code == "MUE_EXCEEDED":
                mue = RULES.mue(e.procedure_code, e.date_of_service)
                assert mue is not None and statuses <= {"accept"}
                consumed = sum(lines[ref].units for ref in related)
                # Every accepted line of the code before it, in the walk, and nothing else.
                before = [
                    (o.claim_id, o.line_number)
                    for o in sorted(others, key=_order)
                    if o.procedure_code == e.procedure_code
                    and _order(o) < _order(e)
                    and final[(o.claim_id, o.line_number)].status.value == "accept"
                ]
                assert related == (before if mue.per_day else [])
                assert consumed <= mue.limit < consumed + e.units
            elif edit.code == "PTP_BUNDLED":
                assert len(related) == 1 and statuses == {"accept"}
                column1 = lines[related[0]].procedure_code
                pairs = RULES.ptp_column1(e.procedure_code, e.date_of_service)
                assert column1 in {p.column1 for p in pairs}
            else:
                primaries = {
                    a.primary for a in RULES.addon_primaries(e.procedure_code, e.date_of_service)
                }
                considered = [
                    (o.claim_id, o.line_number)
                    for o in sorted(others, key=_order)
                    if o.procedure_code in primaries
                ]
                assert related == considered and statuses <= {"deny"}
