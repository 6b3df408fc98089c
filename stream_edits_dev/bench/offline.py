"""The benchmark's offline half: `check` throughput, state size, and which lines the stream answers.

No Kafka here: the engine runs over plain dicts, as `stream-edits check` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from stream_edits.engine import ClaimEntry, DayState, EditEngine
from stream_edits.engine.intake import decode_claim_line
from stream_edits.engine.line import decide_line
from stream_edits.jobs.check import final_decisions
from stream_edits.models import Rejection
from stream_edits.rules.tables import RuleSet
from stream_edits.runtime.state.record import MemberRecord


@dataclass(frozen=True)
class CheckResult:
    """`final_decisions` over the backlog, timed."""

    lines: int
    decisions: int
    seconds: float

    @property
    def lines_per_s(self) -> float:
        """Lines decided per second of wall time."""
        return self.lines / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class StateSize:
    """The engine's state after the backlog: its wire forms, and as the stream's table stores it."""

    patient_days: int
    claim_entries: int
    day_states: int
    claim_wire_bytes: int
    day_wire_bytes: int
    members: int
    record_bytes: int  # one orjson MemberRecord per member, as the stream's table holds them
    key_bytes: int  # the table's keys (member_id)

    @property
    def wire_bytes_per_patient_day(self) -> float:
        """orjson bytes of every ClaimEntry and DayState wire form, per patient-day."""
        total = self.claim_wire_bytes + self.day_wire_bytes
        return total / self.patient_days if self.patient_days else 0.0

    @property
    def stored_bytes_per_patient_day(self) -> float:
        """Table values plus keys, per patient-day."""
        total = self.record_bytes + self.key_bytes
        return total / self.patient_days if self.patient_days else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {
            "patient_days": self.patient_days,
            "claim_entries": self.claim_entries,
            "day_states": self.day_states,
            "claim_wire_bytes": self.claim_wire_bytes,
            "day_wire_bytes": self.day_wire_bytes,
            "members": self.members,
            "record_bytes": self.record_bytes,
            "key_bytes": self.key_bytes,
            "wire_bytes_per_patient_day": round(self.wire_bytes_per_patient_day, 1),
            "stored_bytes_per_patient_day": round(self.stored_bytes_per_patient_day, 1),
        }


def time_check(lines: list[bytes], rules: RuleSet) -> CheckResult:
    """Run `stream-edits check`'s core over `lines` once and time it."""
    start = time.perf_counter()
    decisions = final_decisions(lines, rules)
    return CheckResult(len(lines), len(decisions), time.perf_counter() - start)


def _state_size(
    claims: dict[tuple[str, str], ClaimEntry],
    days: dict[tuple[str, date], DayState],
    patient_days: int,
) -> StateSize:
    records: dict[str, MemberRecord] = {}
    for (member, claim_id), entry in claims.items():
        records.setdefault(member, MemberRecord()).put_claim(claim_id, entry)
    for (member, dos), day in days.items():
        records.setdefault(member, MemberRecord()).put_day(dos, day)
    return StateSize(
        patient_days=patient_days,
        claim_entries=len(claims),
        day_states=len(days),
        claim_wire_bytes=sum(len(orjson.dumps(v.to_wire())) for v in claims.values()),
        day_wire_bytes=sum(len(orjson.dumps(v.to_wire())) for v in days.values()),
        members=len(records),
        record_bytes=sum(len(record.to_bytes()) for record in records.values()),
        key_bytes=sum(len(member.encode()) for member in records),
    )


def simulate(lines: list[bytes], rules: RuleSet, backlog: int) -> tuple[bytearray, StateSize]:
    """Which lines the processor answers, and the state size after the first `backlog` lines.

    Mirrors `Processor._process`: a line is answered when it is dead-lettered (invalid or a
    conflict) or changes or restates at least one decision. A void of an already retracted
    claim, for instance, publishes nothing. State lives per member and the input is keyed by
    member, so this in-order pass gives the same answers as the partitioned stream.
    """
    claims: dict[tuple[str, str], ClaimEntry] = {}
    days: dict[tuple[str, date], DayState] = {}
    engine = EditEngine(rules, claims, days)
    answered = bytearray(len(lines))
    patient_days: set[tuple[str, date]] = set()
    size = _state_size(claims, days, 0)
    for index, raw in enumerate(lines):
        if index == backlog:
            size = _state_size(claims, days, len(patient_days))
        event = decode_claim_line(raw)
        if isinstance(event, Rejection):
            answered[index] = 1
            continue
        result = decide_line(engine, event)
        answered[index] = 1 if result.rejection is not None or result.decisions else 0
        if result.rejection is None and event.date_of_service is not None:
            patient_days.add((event.member_id, event.date_of_service))
    if backlog >= len(lines):
        size = _state_size(claims, days, len(patient_days))
    return answered, size
