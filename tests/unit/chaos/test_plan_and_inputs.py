"""The chaos plan and input: every fault kind in order, slices covering the workload, poison
that the worker must refuse and lines with unknown fields it must decide."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from stream_edits.engine.intake import decode_claim_line
from stream_edits.models import ClaimLineEvent
from stream_edits_dev.bench.workload import generate
from stream_edits_dev.chaos import inputs
from stream_edits_dev.chaos.inputs import VALID, Kind
from stream_edits_dev.chaos.plan import (
    KINDS,
    MOMENT_RANGE,
    Fault,
    fault_order,
    make_plan,
    parse_kinds,
)

ALL = list(KINDS)
PRODUCERS = ["keyed", "unkeyed", "claim-key", "librdkafka"]
MAX_BYTES = 1024 * 1024


def test_the_default_plan_has_a_baseline_five_kills_and_every_other_fault_once() -> None:
    plan = make_plan(50_000, ALL, 5, seed=11)
    faults = [step.fault for step in plan]
    assert faults[0] is Fault.NONE
    assert Counter(faults) == {fault: 5 if fault is Fault.WORKER_KILL else 1 for fault in Fault}
    # A kill lands while the second worker runs.
    join, leave = faults.index(Fault.WORKER_JOIN), faults.index(Fault.WORKER_LEAVE)
    assert join < leave and Fault.WORKER_KILL in faults[join:leave]
    assert [s.label for s in plan if s.fault is Fault.WORKER_KILL][-1] == "worker kill -9 (5/5)"


@pytest.mark.parametrize(
    ("workers", "join", "leave"),
    [
        (2, "2nd worker joins", "2nd worker leaves"),
        (3, "2nd and 3rd workers join", "2nd and 3rd workers leave"),
        (4, "2nd, 3rd and 4th workers join", "2nd, 3rd and 4th workers leave"),
    ],
)
def test_the_join_and_leave_steps_name_the_workers_that_come_and_go(
    workers: int, join: str, leave: str
) -> None:
    plan = make_plan(5_000, ["join-leave"], 0, seed=1, workers=workers)
    assert [s.label for s in plan] == ["none (baseline)", join, leave]


def test_slices_cover_the_workload_in_order_and_moments_stay_inside_them() -> None:
    plan = make_plan(50_003, ALL, 5, seed=3)
    assert plan[0].start == 0 and plan[-1].stop == 50_003
    assert all(a.stop == b.start for a, b in zip(plan, plan[1:], strict=False))
    assert max(s.lines for s in plan) - min(s.lines for s in plan) <= 1
    assert all(MOMENT_RANGE[0] <= s.moment <= MOMENT_RANGE[1] for s in plan)


def test_a_plan_is_the_same_for_the_same_seed_only() -> None:
    assert make_plan(5_000, ALL, 2, seed=1) == make_plan(5_000, ALL, 2, seed=1)
    assert make_plan(5_000, ALL, 2, seed=1) != make_plan(5_000, ALL, 2, seed=2)


def test_fault_kinds_choose_the_steps() -> None:
    assert fault_order(["poison"], 5) == [Fault.NONE, Fault.POISON]
    assert fault_order(["worker-kill"], 3) == [Fault.NONE] + [Fault.WORKER_KILL] * 3
    assert fault_order(["join-leave", "worker-kill"], 1) == [
        Fault.NONE, Fault.WORKER_KILL, Fault.WORKER_JOIN, Fault.WORKER_LEAVE,
    ]  # fmt: skip
    assert parse_kinds(" poison,broker-kill ") == ["poison", "broker-kill"]
    with pytest.raises(ValueError, match="--faults"):
        parse_kinds("poison,meteor")
    with pytest.raises(ValueError):
        make_plan(5, ALL, 5, seed=1)


@pytest.fixture(scope="module")
def built() -> list[list[inputs.Record]]:
    plan = make_plan(6_000, ALL, 2, seed=5)
    return inputs.build(
        plan, generate(6_000, seed=5), PRODUCERS, seed=5, max_message_bytes=MAX_BYTES
    )


def test_the_input_holds_every_workload_line_once_in_order_with_poison_between(
    built: list[list[inputs.Record]],
) -> None:
    records = [r for step in built for r in step]
    assert [r.index for r in records] == list(range(len(records)))
    assert [r.value for r in records if r.kind is Kind.LINE] == generate(6_000, seed=5)
    kinds = Counter(r.kind for r in records)
    assert set(kinds) == set(Kind)
    assert {r.producer for r in records} == set(PRODUCERS)
    for step in built:  # a sprinkle of each kind in every slice
        assert {Kind.INVALID_JSON, Kind.INVALID_LINE, Kind.NULL, Kind.EMPTY, Kind.BINARY,
                Kind.UNKNOWN_FIELDS} <= {r.kind for r in step}  # fmt: skip


def test_poison_is_invalid_and_unknown_field_lines_are_valid(
    built: list[list[inputs.Record]],
) -> None:
    for record in (r for step in built for r in step if r.kind is not Kind.LINE):
        decoded = None if not record.value else decode_claim_line(record.value)
        assert isinstance(decoded, ClaimLineEvent) == (record.kind in VALID), record
    unknown = [r for step in built for r in step if r.kind is Kind.UNKNOWN_FIELDS]
    claims = [orjson.loads(r.value or b"")["claim_id"] for r in unknown]
    assert len(set(claims)) == len(claims)
    assert all(b'"payer_ref"' in (r.value or b"") for r in unknown)


def test_the_poison_burst_follows_its_moment_with_records_near_the_size_limit(
    built: list[list[inputs.Record]],
) -> None:
    plan = make_plan(6_000, ALL, 2, seed=5)
    (at,) = [i for i, step in enumerate(plan) if step.fault is Fault.POISON]
    burst = built[at]
    sizes = {r.kind: len(r.value or b"") for r in burst if len(r.value or b"") > 100_000}
    assert sizes.keys() == {Kind.BINARY, Kind.BIG_VALID}
    assert sizes[Kind.BINARY] >= inputs.BIG_BINARY_BYTES
    assert MAX_BYTES - 64 * 1024 < sizes[Kind.BIG_VALID] < MAX_BYTES
    poison = sum(r.kind is not Kind.LINE for r in burst)
    assert poison >= len(inputs.SPRINKLE) + 20
    first_big = min(i for i, r in enumerate(burst) if r.kind is Kind.BIG_VALID)
    assert first_big >= int(plan[at].moment * plan[at].lines)
