"""Read model of one stored member record: the current decisions of a patient-day's lines, or of
one line, as the worker last published them (minus the stream-only `decided_at` and `source`).

Pure: no Kafka, no Faust, nothing written. The record is the members table's value (see
cache.py); the decisions come from the engine's own read paths over it: `EditEngine.restate_day`
for the rule-relevant lines of a day, and the claim entry's stub for a line of a code no rule
mentions (state.py `ClaimLine.in_day` False), exactly as the engine republishes them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from stream_edits.engine import ClaimEntry, DayState, EditEngine, LineDecision
from stream_edits.engine.core import _stub_decision
from stream_edits.rules.tables import RuleSet
from stream_edits.runtime.state.record import MemberRecord

Decision = dict[str, Any]


class _Claims:
    """The engine's claims map over one record, read-only (the engine's re-puts are dropped)."""

    def __init__(self, member_id: str, record: MemberRecord) -> None:
        self._member_id, self._record = member_id, record

    def get(self, key: tuple[str, str]) -> ClaimEntry | None:
        return self._record.claim(key[1]) if key[0] == self._member_id else None

    def __setitem__(self, key: tuple[str, str], value: ClaimEntry) -> None:
        return None


class _Days:
    """The engine's days map over one record, read-only."""

    def __init__(self, member_id: str, record: MemberRecord) -> None:
        self._member_id, self._record = member_id, record

    def get(self, key: tuple[str, date]) -> DayState | None:
        return self._record.day(key[1]) if key[0] == self._member_id else None

    def __setitem__(self, key: tuple[str, date], value: DayState) -> None:
        return None


def decision_json(decision: LineDecision) -> Decision:
    """A decision as the worker publishes it on the output topic, without `decided_at` and
    `source` (Processor._publish adds those and the provider NPI to `to_wire`)."""
    value = decision.to_wire()
    value["provider_npi"] = decision.provider_npi
    return value


class MemberView:
    """The current decisions held in one member's stored record."""

    def __init__(self, rules: RuleSet, member_id: str, stored: bytes) -> None:
        self.member_id = member_id
        self.record = MemberRecord(orjson.loads(stored), len(stored))
        self.engine = EditEngine(
            rules, _Claims(member_id, self.record), _Days(member_id, self.record)
        )

    def day(self, dos: date) -> list[LineDecision]:
        """Every line of the member on `dos`: rule-relevant lines (voided ones included) and
        stubs, ordered by (claim_id, line_number)."""
        decisions = self.engine.restate_day(self.member_id, dos)
        for claim_id in self.record.claim_ids():
            entry = self.record.claim(claim_id)
            assert entry is not None
            for number, line in entry.lines.items():
                if not line.in_day and line.dos == dos:
                    decisions.append(_stub_decision(self.member_id, claim_id, number, line, entry))
        return sorted(decisions, key=lambda d: (d.claim_id, d.line_number))

    def line(self, claim_id: str, line_number: int) -> LineDecision | None:
        """The line's current decision; None when the record holds no such line (or its day
        expired)."""
        entry = self.record.claim(claim_id)
        line = None if entry is None else entry.lines.get(line_number)
        if line is None:
            return None
        if not line.in_day:
            return _stub_decision(self.member_id, claim_id, line_number, line, entry)
        for decision in self.engine.restate_day(self.member_id, line.dos):
            if (decision.claim_id, decision.line_number) == (claim_id, line_number):
                return decision
        return None
