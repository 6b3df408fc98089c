"""Turning raw bytes into a validated claim-line event, or into a rejection that names the field."""

from __future__ import annotations

from pydantic import ValidationError

from stream_edits.models import ClaimLineEvent, FieldError, Rejection


def rejection_from(error: ValidationError, input_line: int | None = None) -> Rejection:
    """A rejection listing every field pydantic refused, with its message."""
    errors = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "(event)"
        if item["type"] == "json_invalid":
            field = "(json)"
        errors.append(FieldError(field=field, message=item["msg"]))
    if errors and errors[0].field == "(json)":
        reason = f"malformed JSON: {errors[0].message}"
    else:
        reason = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Rejection(reason=reason, errors=errors, input_line=input_line)


_validate_json = ClaimLineEvent.__pydantic_validator__.validate_json


def decode_claim_line(
    raw: bytes | str, input_line: int | None = None
) -> ClaimLineEvent | Rejection:
    """Validate one JSON document as a claim-line event; invalid input becomes a Rejection."""
    try:
        # The validator itself, without model_validate_json's Python wrapper: this is per line.
        event: ClaimLineEvent = _validate_json(raw)
        return event
    except ValidationError as error:
        return rejection_from(error, input_line)
