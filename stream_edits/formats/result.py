"""What a converter makes of a file: claim-line events in file order, and the claims it refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stream_edits.models import ClaimLineEvent, FieldError, Rejection


class UnreadableInput(ValueError):
    """A file no claim can be read from (no X12 interchange, no JSON): names where it failed."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event came from: its claim and the segment or FHIR path of its line."""

    claim_id: str
    location: str


@dataclass(slots=True)
class Conversion:
    """Events in file order with their origins, and one rejection per claim refused whole."""

    events: list[ClaimLineEvent] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, claim_id: str | None, claim_at: str, errors: list[FieldError]) -> None:
        """Refuse a claim whole; `claim_at` says where it starts, each error where it failed."""
        name = f"claim {claim_id}" if claim_id else f"claim at {claim_at}"
        errors = list(dict.fromkeys(errors))  # a problem shared by several lines, once
        problems = "; ".join(f"{e.field}: {e.message}" for e in errors)
        self.rejections.append(
            Rejection(reason=f"{name} refused: {problems}", errors=errors, claim_id=claim_id)
        )

    def accept(self, claim_id: str, lines: list[tuple[ClaimLineEvent, str]]) -> None:
        """Add a claim's events, each with the location of its line."""
        for event, location in lines:
            self.events.append(event)
            self.origins.append(Origin(claim_id, location))


def validate_event(
    fields: dict[str, Any], sources: Mapping[str, str], claim_at: str
) -> ClaimLineEvent | list[FieldError]:
    """Validate one event; each refused field is named by where it came from (`sources`), and
    rules across fields (e.g. a replacement needs its original) by where the claim starts."""
    try:
        return ClaimLineEvent.model_validate(fields)
    except ValidationError as error:
        return [
            FieldError(
                field=sources.get(str(item["loc"][0]), claim_at) if item["loc"] else claim_at,
                message=item["msg"],
            )
            for item in error.errors(include_url=False, include_input=False)
        ]
