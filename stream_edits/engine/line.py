"""The per-line rule every entry point runs: decode → engine → outputs.

`check`, the stream processor, replay and the bench call `decide_line`; none of them calls the
engine another way, so a line is decided the same wherever it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_edits.engine import EditEngine, LineDecision
from stream_edits.engine.intake import decode_claim_line
from stream_edits.models import ClaimLineEvent, Rejection


@dataclass(slots=True)
class LineResult:
    """What one input line did: the decisions to publish, or why it was refused."""

    decisions: list[LineDecision] = field(default_factory=list)
    rejection: Rejection | None = None
    duplicate: bool = False  # an exact redelivery: `decisions` restate the current ones
    # A correction whose original is not known yet: decided all the same, and reported
    # (engine.core.unresolved_reference).
    unresolved: ClaimLineEvent | None = None


def decide_line(
    engine: EditEngine, line: bytes | ClaimLineEvent, input_line: int | None = None
) -> LineResult:
    """Decode `line` (unless already decoded), apply it, and return the decisions to publish.

    An exact redelivery changes nothing, but its lines' current decisions are published again:
    after a crash the state may hold an event whose decisions were never delivered.
    """
    event = line if isinstance(line, ClaimLineEvent) else decode_claim_line(line, input_line)
    if isinstance(event, Rejection):
        return LineResult(rejection=event)
    outcome = engine.process(event)
    if outcome.rejection is not None:
        rejection = outcome.rejection
        if input_line is not None:
            rejection = rejection.model_copy(update={"input_line": input_line})
        return LineResult(rejection=rejection)
    if outcome.duplicate:
        return LineResult(engine.restate_event(event), duplicate=True)
    return LineResult(outcome.decisions, unresolved=event if outcome.unresolved else None)
