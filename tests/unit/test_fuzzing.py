"""Fuzzing: arbitrary bytes and arbitrary field values into the decoder, the processor and the
engine. Nothing raises past the dead-letter path, and the engine's invariants hold for any set of
valid lines: one final decision per line, accepted units never over a date-of-service limit, no
accepted add-on without an accepted primary for the same patient, provider and date."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date
from typing import Any

import orjson
from faust.types import TP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_edits.engine import EditEngine
from stream_edits.engine.intake import decode_claim_line
from stream_edits.models import ClaimLineEvent, Rejection
from stream_edits.rules.loader import load_rules
from tests.factories import NPI_A, NPI_B, line, void
from tests.unit.engine.helpers import run
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor

RULES = load_rules()
FIELDS = [
    "claim_id", "line_number", "member_id", "provider_npi", "date_of_service", "procedure_code",
    "modifiers", "units", "claim_frequency", "original_claim_id", "received_at",
]  # fmt: skip
CODES = ["64461", "64462", "64463", "76942", "77002", "77003", "77012", "99213"]
DAYS = [date(2025, 3, 14), date(2025, 3, 15)]
VALID = line("C1", 1, "64461").model_dump_json().encode()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # orjson writes 64-bit integers; larger ones below
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["2025-03-14", "2025-03-15T09:00:00+00:00", "64461", "RT", "7", "8", NPI_A]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_objects(draw: st.DrawFn) -> bytes:
    """A JSON object over the model's field names (and strangers), with any values, often
    starting from a valid line so that most fields pass and one goes wrong."""
    base: dict[str, Any] = orjson.loads(VALID) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from([*FIELDS, "extra", ""]), max_size=5)):
        if draw(st.booleans()):
            base[name] = draw(json_values)
        else:
            base.pop(name, None)
    return orjson.dumps(base, option=orjson.OPT_NON_STR_KEYS)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid line with bytes flipped, cut or inserted."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at:]
            if not data:
                break
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


# JSON texts no encoder here writes: huge numbers, NaN, duplicate keys, deep nesting, BOM.
ODD_DOCUMENTS = [
    VALID.replace(b'"units":1', b'"units":' + b"9" * 40),
    VALID.replace(b'"units":1', b'"units":1e400'),
    VALID.replace(b'"units":1', b'"units":NaN'),
    VALID[:-1] + b',"claim_id":"C2","claim_id":"C3"}',
    b"[" * 5000 + b"]" * 5000,
    b"\xef\xbb\xbf" + VALID,
    VALID + b"\n" + VALID,
]
hostile_records = st.one_of(
    st.binary(max_size=300), hostile_objects(), mutated_lines(), st.sampled_from(ODD_DOCUMENTS)
)


@given(hostile_records)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_the_decoder_returns_a_line_or_a_rejection_for_any_bytes(raw: bytes) -> None:
    result = decode_claim_line(raw)
    assert isinstance(result, ClaimLineEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.code.value and result.reason


@given(st.lists(st.one_of(hostile_records, st.just(VALID)), min_size=1, max_size=25))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_processor_dead_letters_what_it_cannot_decide_and_never_raises(
    values: list[bytes],
) -> None:
    producer = FakeProducer()
    processor = fake_processor(DictTable(), producer=producer)
    records = [FakeRecord(i, v) for i, v in enumerate(values)]

    async def process() -> None:
        await processor.process_batch(records, {TP("claim-lines", 0): len(records)})
        await processor.settle()

    asyncio.run(process())
    stats = processor.stats
    assert "internal_error" not in stats.dead_letters_by_reason  # nothing raised inside
    assert stats.events == len(records)
    decided = {
        (d["claim_id"], d["line_number"])
        for topic, _, value in producer.sent
        if topic == "claim-edits"
        for d in [orjson.loads(value or b"{}")]
    }
    invalid = 0
    for value in values:
        parsed = decode_claim_line(value)
        if isinstance(parsed, Rejection):
            invalid += 1
        elif not parsed.is_void:  # a line: decided, or dead-lettered as a conflict
            assert (parsed.claim_id, parsed.line_number) in decided or stats.conflicts
    assert stats.dead_letters == invalid + stats.conflicts


@st.composite
def valid_days(draw: st.DrawFn) -> list[ClaimLineEvent]:
    """Claims of two members over two days and providers, with replacements and voids, units
    and modifiers drawn freely."""
    events: list[ClaimLineEvent] = []
    claims_of: dict[str, list[str]] = defaultdict(list)
    for c in range(draw(st.integers(1, 9))):
        member = draw(st.sampled_from(["M1", "M2"]))
        minutes = draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["original"] * 4 + ["replacement", "void"]))
        target = draw(st.sampled_from(claims_of[member])) if claims_of[member] else None
        if kind == "void" and target is not None:
            events.append(void(f"C{c}", target, member_id=member, minutes=minutes))
            continue
        npi_, dos = draw(st.sampled_from([NPI_A, NPI_B])), draw(st.sampled_from(DAYS))
        for n in range(1, draw(st.integers(1, 4)) + 1):
            events.append(
                line(
                    f"C{c}",
                    n,
                    draw(st.sampled_from(CODES)),
                    member_id=member,
                    npi_=npi_,
                    dos=dos,
                    minutes=minutes,
                    units=draw(st.integers(1, 4)),
                    modifiers=draw(
                        st.lists(st.sampled_from(["RT", "LT", "59", "XS", "50"]), max_size=2)
                    ),
                    original=target if kind == "replacement" else None,
                )
            )
        claims_of[member].append(f"C{c}")
    return events


@given(valid_days(), st.randoms(use_true_random=False))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_engine_invariants_hold_for_any_lines_in_any_order(
    events: list[ClaimLineEvent], rng: Any
) -> None:
    shuffled = list(events)
    rng.shuffle(shuffled)
    final = run(EditEngine(RULES), shuffled)
    lines = {(e.claim_id, e.line_number): e for e in events if not e.is_void}
    assert set(final) == set(lines)  # one final decision per valid line, none for others

    accepted: dict[tuple[str, date, str], list[ClaimLineEvent]] = defaultdict(list)
    for key, decision in final.items():
        if decision.status.value == "accept":
            e = lines[key]
            assert e.date_of_service and e.provider_npi
            accepted[(e.member_id, e.date_of_service, e.provider_npi)].append(e)
    for (_, dos, _), group in accepted.items():
        units: dict[str, int] = defaultdict(int)
        for e in group:
            assert e.procedure_code
            units[e.procedure_code] += e.units
            mue = RULES.mue(e.procedure_code, dos)
            if mue is not None and not mue.per_day:
                assert e.units <= mue.limit
        for code, total in units.items():
            mue = RULES.mue(code, dos)
            if mue is not None and mue.per_day:
                assert total <= mue.limit, (code, total, mue.limit)
        codes = set(units)
        for code in codes:
            required = {r.primary for r in RULES.addon_primaries(code, dos) if r.edit_type == 1}
            if required:
                assert codes & required, (code, required)
