"""Running events through an engine and reading back final decisions."""

from __future__ import annotations

from collections.abc import Iterable

from stream_edits.engine import EditEngine, LineDecision
from stream_edits.models import ClaimLineEvent


def run(
    engine: EditEngine, events: Iterable[ClaimLineEvent]
) -> dict[tuple[str, int], LineDecision]:
    """Process events in order; the latest decision of every line."""
    latest: dict[tuple[str, int], LineDecision] = {}
    for event in events:
        for decision in engine.process(event).decisions:
            latest[(decision.claim_id, decision.line_number)] = decision
    return latest


def verdicts(
    decisions: dict[tuple[str, int], LineDecision],
) -> dict[tuple[str, int], tuple[str, list[str]]]:
    """Status and edit codes per line: what a payer acts on."""
    return {k: (d.status.value, [e.code for e in d.edits]) for k, d in decisions.items()}


Cause = tuple[str, list[tuple[str, int]]]


def causes(
    decisions: dict[tuple[str, int], LineDecision],
) -> dict[tuple[str, int], tuple[str, list[Cause]]]:
    """Status and, per edit, its code and related lines: the decision without its arrival-order
    dependent revision and changed_by."""
    return {
        k: (
            d.status.value,
            [(e.code, [(r.claim_id, r.line_number) for r in e.related_lines]) for e in d.edits],
        )
        for k, d in decisions.items()
    }
