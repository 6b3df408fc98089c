"""Validation of claim-line events at the topic edge: each refusal names its field."""

from __future__ import annotations

import orjson
import pytest

from stream_edits.engine.intake import decode_claim_line
from stream_edits.models import ClaimLineEvent, Rejection
from tests.factories import NPI_A

VALID = {
    "claim_id": "C1",
    "line_number": 1,
    "member_id": "M1",
    "provider_npi": NPI_A,
    "date_of_service": "2025-03-14",
    "procedure_code": "64461",
    "received_at": "2025-03-15T09:00:00Z",
}


def test_a_valid_line_is_accepted() -> None:
    assert isinstance(decode_claim_line(orjson.dumps(VALID)), ClaimLineEvent)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"date_of_service": 20250314}, "date_of_service"),
        ({"date_of_service": "2025-02-30"}, "date_of_service"),
        ({"provider_npi": NPI_A[:-1] + str((int(NPI_A[-1]) + 1) % 10)}, "provider_npi"),
        ({"procedure_code": "6446"}, "procedure_code"),
        ({"line_number": "1"}, "line_number"),
        ({"units": 0}, "units"),
        ({"modifiers": ["RT", "LT", "59", "XS", "XU"]}, "modifiers"),
        ({"received_at": "2025-03-15T09:00:00"}, "received_at"),
        ({"claim_frequency": "7"}, "original_claim_id"),
        ({"original_claim_id": "C0"}, "original_claim_id"),
    ],
)
def test_an_invalid_line_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    refused = decode_claim_line(orjson.dumps({**VALID, **change}))
    assert isinstance(refused, Rejection)
    assert field in refused.reason


def test_a_void_carrying_line_fields_is_refused() -> None:
    void = {**VALID, "claim_frequency": "8", "original_claim_id": "C0"}
    refused = decode_claim_line(orjson.dumps(void))
    assert isinstance(refused, Rejection) and "remove" in refused.reason


def test_frequency_sent_as_a_number_means_the_same_code() -> None:
    event = decode_claim_line(orjson.dumps({**VALID, "claim_frequency": 1}))
    assert isinstance(event, ClaimLineEvent) and event.claim_frequency == "1"
