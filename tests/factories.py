"""Builders of valid claim-line events for tests (valid NPIs, realistic defaults)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from stream_edits.models import ClaimLineEvent


def npi(seed: int) -> str:
    """A valid 10-digit NPI built from `seed` (Luhn check digit over "80840" + 9 digits)."""
    body = f"{100000000 + seed % 900000000:09d}"
    digits = [int(c) for c in "80840" + body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


DOS = date(2025, 3, 14)
T0 = datetime(2025, 3, 15, 9, 0, tzinfo=UTC)
NPI_A = npi(1)
NPI_B = npi(2)


def line(
    claim_id: str,
    line_number: int,
    code: str,
    *,
    member_id: str = "M1",
    npi_: str = NPI_A,
    dos: date = DOS,
    minutes: float = 0,
    units: int = 1,
    modifiers: list[str] | None = None,
    frequency: str = "1",
    original: str | None = None,
    **extra: Any,
) -> ClaimLineEvent:
    """A service line of an original (or, with `original`, replacement) claim."""
    payload: dict[str, Any] = {
        "claim_id": claim_id,
        "line_number": line_number,
        "member_id": member_id,
        "provider_npi": npi_,
        "date_of_service": dos,
        "procedure_code": code,
        "modifiers": modifiers or [],
        "units": units,
        "claim_frequency": frequency if original is None else "7",
        "received_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        **extra,
    }
    if original is not None:
        payload["original_claim_id"] = original
    return ClaimLineEvent.model_validate(payload)


def void(
    claim_id: str, original: str, *, member_id: str = "M1", minutes: float = 0, **extra: Any
) -> ClaimLineEvent:
    """A void (frequency 8) of `original`."""
    return ClaimLineEvent.model_validate(
        {
            "claim_id": claim_id,
            "member_id": member_id,
            "claim_frequency": "8",
            "original_claim_id": original,
            "received_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            **extra,
        }
    )
