"""Pydantic v2 models of every event on every topic: claim lines in, decisions, dead letters."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    field_validator,
    model_validator,
)

NPI_PATTERN = re.compile(r"^[0-9]{10}$")
CODE_PATTERN = r"^[A-Z0-9]{5}$"
MODIFIER_PATTERN = r"^[A-Z0-9]{2}$"

LINE_FIELDS = ("line_number", "provider_npi", "date_of_service", "procedure_code")


# A payer's claims come from a bounded set of practitioners: most NPIs were checked before.
@lru_cache(maxsize=1 << 16)
def npi_is_valid(npi: str) -> bool:
    """True when `npi` is 10 digits, the last a Luhn check digit over "80840" + the first 9."""
    if not NPI_PATTERN.match(npi):
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    # Luhn: double every second digit counting from the right of the payload.
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


class ClaimFrequency(StrEnum):
    """X12 CLM05-3 claim frequency: original, replacement, void."""

    ORIGINAL = "1"
    REPLACEMENT = "7"
    VOID = "8"


# Members bound once: an enum member looked up on its class goes through a descriptor each time.
_ORIGINAL_FREQUENCY, _VOID_FREQUENCY = ClaimFrequency.ORIGINAL, ClaimFrequency.VOID


class Status(StrEnum):
    """A line's decision."""

    ACCEPT = "accept"
    DENY = "deny"
    VOID = "void"


class ClaimLineEvent(BaseModel):
    """One event on `claim-lines`: a service line of an original or replacement claim, or a void.

    Unknown extra fields are kept and passed through to the line's decision.
    """

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    claim_id: Annotated[str, Field(min_length=1, max_length=64)]
    line_number: Annotated[StrictInt, Field(ge=1, le=9999)] | None = None
    member_id: Annotated[str, Field(min_length=1, max_length=64)]
    provider_npi: str | None = None
    # Strict: ISO text in JSON (pydantic's lax mode would read a number as a Unix timestamp).
    date_of_service: Annotated[date, Strict()] | None = None
    procedure_code: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    modifiers: Annotated[
        list[Annotated[str, Field(pattern=MODIFIER_PATTERN)]], Field(max_length=4)
    ] = Field(default_factory=list)
    units: Annotated[StrictInt, Field(ge=1, le=999)] = 1
    claim_frequency: ClaimFrequency = ClaimFrequency.ORIGINAL
    original_claim_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    received_at: AwareDatetime

    @field_validator("claim_frequency", mode="before")
    @classmethod
    def _frequency_as_text(cls, value: Any) -> Any:
        # Producers that send the frequency as a JSON number mean the same code.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("provider_npi")
    @classmethod
    def _npi_check_digit(cls, value: str | None) -> str | None:
        if value is not None and not npi_is_valid(value):
            raise ValueError("must be 10 digits with a valid Luhn check digit (prefix 80840)")
        return value

    @model_validator(mode="after")
    def _fields_for_frequency(self) -> ClaimLineEvent:
        if self.claim_frequency is _VOID_FREQUENCY:
            present = [f for f in (*LINE_FIELDS, "units") if f in self.model_fields_set]
            if present:
                raise ValueError(f"a void (8) is one event for the whole claim: remove {present}")
        else:
            got = (self.line_number, self.provider_npi, self.date_of_service, self.procedure_code)
            if None in got:
                missing = [f for f, v in zip(LINE_FIELDS, got, strict=True) if v is None]
                frequency = self.claim_frequency.value
                raise ValueError(f"claim_frequency {frequency} needs {', '.join(missing)}")
        if self.claim_frequency is _ORIGINAL_FREQUENCY:
            if self.original_claim_id is not None:
                raise ValueError("original_claim_id is only for replacements (7) and voids (8)")
        elif self.original_claim_id is None:
            frequency = self.claim_frequency.value
            raise ValueError(f"claim_frequency {frequency} needs original_claim_id")
        elif self.original_claim_id == self.claim_id:
            raise ValueError("original_claim_id must name another claim")
        return self

    @property
    def is_void(self) -> bool:
        """True for a void event (frequency 8)."""
        return self.claim_frequency is _VOID_FREQUENCY

    @property
    def extra_fields(self) -> dict[str, Any] | None:
        """Fields the producer sent that the model does not know (None when there are none),
        passed through to decisions. Read-only: it is the event's own dict."""
        return self.__pydantic_extra__ or None


class RuleSource(BaseModel):
    """Where an edit's rule comes from: table, file row, and the dates it is in force."""

    model_config = ConfigDict(frozen=True)

    table: str
    file: str
    row: int
    effective_date: date
    deletion_date: date | None = None


class Edit(BaseModel):
    """One failed edit on a line: a code, a human rationale and the rule's source."""

    model_config = ConfigDict(frozen=True)

    code: Literal["MUE_EXCEEDED", "ADDON_WITHOUT_PRIMARY", "PTP_BUNDLED"]
    message: str
    rule_source: RuleSource


class SourceOffset(BaseModel):
    """The Kafka position of the input event that produced a decision."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int


class Decision(BaseModel):
    """A line's decision: the value on `claim-edits` and one line of `stream-edits check` output.

    `revision` counts how many times the line's decision changed, starting at 1. The stream adds
    provider_npi, decided_at and source; `check` leaves them out.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    claim_id: str
    line_number: int
    member_id: str
    date_of_service: date
    procedure_code: str
    status: Status
    edits: list[Edit]
    revision: Annotated[int, Field(ge=1)]
    provider_npi: str | None = None
    decided_at: datetime | None = None
    source: SourceOffset | None = None


class FieldError(BaseModel):
    """One reason an input was refused, naming the field."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class Rejection(BaseModel):
    """An input that got no decision (invalid, or conflicting with an earlier event)."""

    model_config = ConfigDict(frozen=True)

    reason: str
    errors: list[FieldError] = Field(default_factory=list)
    input_line: int | None = None


class DeadLetter(BaseModel):
    """A `claim-lines-dlq` event: the raw bytes of a refused message, why, and where it was."""

    model_config = ConfigDict(frozen=True)

    reason: str
    errors: list[FieldError] = Field(default_factory=list)
    raw_base64: str
    raw_text: str | None = None
    source: SourceOffset
    failed_at: datetime
