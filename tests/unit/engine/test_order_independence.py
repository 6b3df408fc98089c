"""Property tests: final decisions depend on the set of events alone.

Hypothesis generates patient-days (several members, days, providers, claims, replacements and
voids), then feeds them in any permutation with any redeliveries. The final decision of every
line (status, edits and each edit's related lines; not the arrival-dependent revision and
changed_by) must be the same, and must equal a direct reading of the contract for the default
tables.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_edits.engine import EditEngine
from stream_edits.models import ClaimLineEvent
from stream_edits.rules.loader import load_rules
from tests.factories import NPI_A, NPI_B, line, void
from tests.unit.engine.helpers import Cause, causes, run

RULES = load_rules()
CODES = ["64461", "64462", "64463", "76942", "77002", "77012", "99213", "36415"]
BLOCKS = {"64461", "64462", "64463"}
IMAGING = {"76942", "77002", "77003", "77012"}
DAYS = [date(2025, 3, 14), date(2025, 3, 15)]


@st.composite
def scenarios(draw: st.DrawFn) -> list[ClaimLineEvent]:
    """Claims of one or two members; some replace or void an earlier claim of the same member."""
    events: list[ClaimLineEvent] = []
    claims_of: dict[str, list[str]] = defaultdict(list)
    for c in range(draw(st.integers(1, 7))):
        member = draw(st.sampled_from(["M1", "M2"]))
        claim_id = f"C{c}"
        minutes = draw(st.integers(0, 4))  # ties on received_at are common on purpose
        kind = draw(st.sampled_from(["original"] * 4 + ["replacement", "void"]))
        target = draw(st.sampled_from(claims_of[member])) if claims_of[member] else None
        if kind == "void" and target is not None:
            events.append(void(claim_id, target, member_id=member, minutes=minutes))
            continue
        original = target if kind == "replacement" else None
        npi_ = draw(st.sampled_from([NPI_A, NPI_B]))
        dos = draw(st.sampled_from(DAYS))
        for n in range(1, draw(st.integers(1, 4)) + 1):
            events.append(
                line(
                    claim_id,
                    n,
                    draw(st.sampled_from(CODES)),
                    member_id=member,
                    npi_=npi_,
                    dos=dos,
                    minutes=minutes,
                    units=draw(st.sampled_from([1, 1, 1, 2])),
                    modifiers=draw(st.sampled_from([[], [], ["RT"], ["LT"], ["59"]])),
                    original=original,
                )
            )
        claims_of[member].append(claim_id)
    return events


Key = tuple[str, int]
Result = dict[Key, tuple[str, list[Cause]]]


def contract(events: list[ClaimLineEvent]) -> Result:
    """The engine contract read literally for the default tables (an independent oracle).

    Related lines: an MUE denial names the accepted lines of its code before it, an add-on
    denial every line of its primary (none accepted), a PTP denial the first accepted line of
    the lowest column-one code billed.
    """
    retracted = {(e.member_id, e.original_claim_id) for e in events if e.original_claim_id}
    lines = {(e.claim_id, e.line_number): e for e in events if not e.is_void}
    result: Result = {}
    groups: dict[tuple[object, ...], list[ClaimLineEvent]] = defaultdict(list)
    for key, e in lines.items():
        if (e.member_id, e.claim_id) in retracted:
            result[key] = ("void", [])
        else:
            groups[(e.member_id, e.date_of_service, e.provider_npi)].append(e)
    for group in groups.values():
        group.sort(key=lambda e: (e.received_at, e.claim_id, e.line_number))
        used: dict[str, list[ClaimLineEvent]] = defaultdict(list)

        for e in group:  # primaries and unrelated codes
            if e.procedure_code not in IMAGING and e.procedure_code != "64462":
                _decide(e, [], used, result)
        primaries = [_key(e) for e in group if e.procedure_code == "64461"]
        for e in group:  # add-ons, after their primaries
            if e.procedure_code == "64462":
                addon = [] if used["64461"] else [("ADDON_WITHOUT_PRIMARY", primaries)]
                _decide(e, addon, used, result)
        for e in group:  # imaging guidance, included in any accepted block
            if e.procedure_code in IMAGING:
                blocks = [b for b in sorted(BLOCKS) if used[b]]
                ptp = [("PTP_BUNDLED", [_key(used[blocks[0]][0])])] if blocks else []
                _decide(e, ptp, used, result)
    return result


def _key(e: ClaimLineEvent) -> Key:
    assert e.line_number is not None
    return e.claim_id, e.line_number


def _decide(
    e: ClaimLineEvent, edits: list[Cause], used: dict[str, list[ClaimLineEvent]], result: Result
) -> None:
    """MUE for the three block codes (1 unit/day), then record; accepted lines use units."""
    assert e.procedure_code is not None
    consumed = used[e.procedure_code]
    if e.procedure_code in BLOCKS and sum(u.units for u in consumed) + e.units > 1:
        edits.append(("MUE_EXCEEDED", [_key(u) for u in consumed]))
    if not edits:
        consumed.append(e)
    result[_key(e)] = ("deny" if edits else "accept", edits)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=scenarios())
def test_any_permutation_with_redeliveries_gives_the_same_final_decisions(
    data: st.DataObject, events: list[ClaimLineEvent]
) -> None:
    in_order = causes(run(EditEngine(RULES), events))
    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    positions = data.draw(
        st.lists(st.integers(0, len(shuffled)), min_size=len(repeats), max_size=len(repeats))
    )
    replayed = list(shuffled)
    for event, at in zip(repeats, positions, strict=True):
        replayed.insert(at, event)
    assert causes(run(EditEngine(RULES), replayed)) == in_order


@settings(max_examples=300, deadline=None)
@given(events=scenarios())
def test_final_decisions_match_the_contract_read_literally(events: list[ClaimLineEvent]) -> None:
    assert causes(run(EditEngine(RULES), events)) == contract(events)


@settings(max_examples=100, deadline=None)
@given(events=scenarios(), data=st.data())
def test_redelivering_everything_twice_is_idempotent(
    events: list[ClaimLineEvent], data: st.DataObject
) -> None:
    engine = EditEngine(RULES)
    first = run(engine, events)
    again = data.draw(st.permutations(events))
    assert all(engine.process(e).duplicate for e in again)
    assert run(engine, again) == {}
    assert causes(first) == contract(events)


@settings(max_examples=100, deadline=None)
@given(events=scenarios())
def test_revisions_count_changes_and_each_line_starts_at_one(events: list[ClaimLineEvent]) -> None:
    engine = EditEngine(RULES)
    seen: dict[tuple[str, int], int] = {}
    for event in events:
        for d in engine.process(event).decisions:
            key = (d.claim_id, d.line_number)
            assert d.revision == seen.get(key, 0) + 1
            seen[key] = d.revision


BILLING = [NPI_A, NPI_B]
NUMBERS = ["X1", "X2"]  # few patient control numbers: providers reuse them, on purpose


@st.composite
def identity_scenarios(draw: st.DrawFn) -> list[ClaimLineEvent]:
    """Claims as intake makes them (claim id = payer claim control number, with the provider's
    CLM01 and billing NPI), whose corrections keep their CLM01 and name the original by its
    payer claim control number, by CLM01, or by a number nothing carries; chains included."""
    events: list[ClaimLineEvent] = []
    claims_of: dict[str, list[str]] = defaultdict(list)
    for c in range(draw(st.integers(1, 7))):
        member = draw(st.sampled_from(["M1", "M2"]))
        claim_id = f"PCN{c}"
        identity = {
            "patient_control_number": draw(st.sampled_from(NUMBERS)),
            "billing_provider": draw(st.sampled_from(BILLING)),
        }
        minutes = draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["original"] * 3 + ["replacement"] * 2 + ["void"]))
        target = None
        if kind != "original":
            target = draw(st.sampled_from([*claims_of[member], *NUMBERS, "X9"]))
        if kind == "void" and target is not None:
            events.append(void(claim_id, target, member_id=member, minutes=minutes, **identity))
            continue
        dos = draw(st.sampled_from(DAYS))
        for n in range(1, draw(st.integers(1, 3)) + 1):
            events.append(
                line(
                    claim_id,
                    n,
                    draw(st.sampled_from(CODES)),
                    member_id=member,
                    npi_=draw(st.sampled_from([NPI_A, NPI_B])),
                    dos=dos,
                    minutes=minutes,
                    units=draw(st.sampled_from([1, 1, 2])),
                    original=target,
                    **identity,
                )
            )
        claims_of[member].append(claim_id)
    return events


def retracted_by_identity(events: list[ClaimLineEvent]) -> set[tuple[str, str]]:
    """(member, claim) pairs a correction retracts, read literally from the identity rules: the
    claim of the id it names, and the claims with the patient control number it names under its
    billing provider received before it (by (received_at, claim_id)), never itself."""
    claims = {(e.member_id, e.claim_id): e for e in events if not e.is_void}
    out: set[tuple[str, str]] = set()
    for r in (e for e in events if e.original_claim_id is not None):
        out.add((r.member_id, r.original_claim_id))
        for (member, claim_id), c in claims.items():
            if (
                member == r.member_id
                and claim_id != r.claim_id
                and c.patient_control_number == r.original_claim_id
                and c.billing_provider == r.billing_provider
                and (c.received_at, claim_id) < (r.received_at, r.claim_id)
            ):
                out.add((member, claim_id))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=identity_scenarios())
def test_corrections_keeping_their_clm01_give_the_same_final_decisions_in_any_order(
    data: st.DataObject, events: list[ClaimLineEvent]
) -> None:
    in_order = run(EditEngine(RULES), events)
    replayed = data.draw(st.permutations(events))
    replayed += data.draw(st.lists(st.sampled_from(events), max_size=4))

    assert causes(run(EditEngine(RULES), replayed)) == causes(in_order)
    retracted = retracted_by_identity(events)
    for (claim_id, _), decision in in_order.items():
        voided = (decision.member_id, claim_id) in retracted
        assert (decision.status.value == "void") == voided, (claim_id, retracted)
