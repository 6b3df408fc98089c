"""Pydantic v2 models of every event on every topic: claim lines in, decisions, dead letters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

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

    Unknown extra fields are accepted and count in the line's content (a redelivery must carry the
    same ones), but they are neither stored nor passed through to decisions: a member's state and
    a line's decision stay small whatever a producer adds.
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
    # The provider's own number of the claim (X12 CLM01, FHIR Claim.identifier) and the billing
    # provider's NPI (2010AA, Claim.provider): with them a correction may name its original by
    # that number (docs/input-formats.md, "Identity").
    patient_control_number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    billing_provider: str | None = None

    @field_validator("claim_frequency", mode="before")
    @classmethod
    def _frequency_as_text(cls, value: Any) -> Any:
        # Producers that send the frequency as a JSON number mean the same code.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("provider_npi", "billing_provider")
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


class RuleSource(BaseModel):
    """Where an edit's rule comes from: table, file row, and the dates it is in force."""

    model_config = ConfigDict(frozen=True)

    table: str
    file: str
    row: int
    effective_date: date
    deletion_date: date | None = None


EditCode = Literal["MUE_EXCEEDED", "ADDON_WITHOUT_PRIMARY", "PTP_BUNDLED"]
EDIT_CODES: tuple[EditCode, ...] = get_args(EditCode)


class AdjustmentCodes(BaseModel):
    """What a payer sends on the X12 835 for a denying edit: CAS group code and CARC, LQ RARC."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_code: Literal["CO", "OA", "PI", "PR"] = Field(
        description="CAS01 claim adjustment group code, e.g. CO (contractual obligation)"
    )
    carc: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,3}$")] = Field(
        description="CAS02 Claim Adjustment Reason Code, e.g. 151"
    )
    rarc: Annotated[str, Field(pattern=r"^(MA|M|N)[0-9]{1,4}$")] | None = Field(
        default=None, description="LQ02 Remittance Advice Remark Code (LQ01 HE), e.g. N362"
    )


class LineRef(BaseModel):
    """A claim line of the same member, date of service and rendering provider."""

    model_config = ConfigDict(frozen=True)

    claim_id: str
    line_number: int


class Edit(BaseModel):
    """One failed edit on a line: a code, a human rationale, the rule's source, the X12
    adjustment codes a payer sends for it (from the rules data) and the lines that caused it."""

    model_config = ConfigDict(frozen=True)

    code: EditCode
    message: str
    rule_source: RuleSource
    adjustment: AdjustmentCodes | None = Field(
        default=None, description="the 835 group code, CARC and RARC of this edit's denial"
    )
    related_lines: list[LineRef] = Field(
        default_factory=list,
        description=(
            "the lines that caused this denial, in the engine's walk order. MUE_EXCEEDED: the "
            "accepted lines that consumed the date of service's units (none for a per-line MAI 1 "
            "edit, or when the line's own units pass the limit); PTP_BUNDLED: the accepted "
            "column-one line it is bundled into; ADDON_WITHOUT_PRIMARY: the lines of its listed "
            "primary codes that were considered, none accepted (none when no primary was billed)"
        ),
    )


class ChangedBy(BaseModel):
    """The event whose arrival made a decision's revision: a line, or a void (no line number)."""

    model_config = ConfigDict(frozen=True)

    claim_id: str
    line_number: int | None = Field(description="null for a void, which carries no lines")


class SourceOffset(BaseModel):
    """The Kafka position of the input event that produced a decision."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int


class Decision(BaseModel):
    """A line's decision: the value on `claim-edits` and one line of `stream-edits check` output.

    `revision` counts how many times the line's decision changed, starting at 1; `changed_by`
    names the event whose arrival made this revision (null when restated from state kept before
    causes were). `claim_id` is the payer claim control number; `patient_control_number` the
    provider's own (CLM01), when the claim carried one, so a provider can quote either. The
    stream adds provider_npi, decided_at and source (the `claim-lines` record of the event that
    caused this revision); `check` leaves them out.
    """

    model_config = ConfigDict(frozen=True)

    claim_id: str
    line_number: int
    member_id: str
    date_of_service: date
    procedure_code: str
    status: Status
    edits: list[Edit]
    revision: Annotated[int, Field(ge=1)]
    changed_by: ChangedBy | None = None
    patient_control_number: str | None = None
    provider_npi: str | None = None
    decided_at: datetime | None = None
    source: SourceOffset | None = None


class FieldError(BaseModel):
    """One reason an input was refused, naming the field."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class RejectCode(StrEnum):
    """Why an input got no decision, as a stable code (the dead letter's `reason` header)."""

    INVALID_LINE = "invalid_line"  # not a valid claim-line event (JSON, fields, rules of form)
    CONFLICT = "conflict"  # an identity already received with other content
    MEMBER_STATE_TOO_LARGE = "member_state_too_large"  # the member's record would pass the limit
    # A notice, not a refusal: a correction naming no claim known when it came; its lines are
    # decided all the same, and the claim it names is voided if it arrives later.
    UNRESOLVED_REFERENCE = "unresolved_reference"
    INTERNAL_ERROR = "internal_error"  # a bug: the line is set aside, the stream goes on


class Rejection(BaseModel):
    """An input that got no decision (invalid, or conflicting with an earlier event)."""

    model_config = ConfigDict(frozen=True)

    reason: str
    code: RejectCode = RejectCode.INVALID_LINE
    errors: list[FieldError] = Field(default_factory=list)
    input_line: int | None = None
    claim_id: str | None = None  # an X12 or FHIR claim refused whole


class DeadLetterHeaders(BaseModel):
    """The headers of a `claim-lines-dlq` record, whose key and value are the refused record's
    own bytes (Kafka Connect's dead-letter convention): where it was read, why it was refused.

    Header values are UTF-8 text; field names here are the header names.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    topic: str = Field(alias="__connect.errors.topic", description="the input topic")
    partition: int = Field(alias="__connect.errors.partition")
    offset: int = Field(alias="__connect.errors.offset")
    exception_class: str = Field(
        alias="__connect.errors.exception.class.name",
        description="the kind of failure, e.g. stream_edits.InvalidLine",
    )
    exception_message: str = Field(
        alias="__connect.errors.exception.message", description="the reason, for people"
    )
    stage: Literal["VALUE_CONVERTER", "TASK_PUT"] = Field(
        alias="__connect.errors.stage",
        description="VALUE_CONVERTER: the value is not a valid line; TASK_PUT: refused by state",
    )
    connector: str = Field(
        alias="__connect.errors.connector.name", description="the worker's app id"
    )
    reason: RejectCode = Field(alias="stream-edits.reason")
    errors: str = Field(
        alias="stream-edits.errors",
        description='JSON list of {"field", "message"}, at most 20 entries',
    )
    timestamp: int | None = Field(
        default=None,
        alias="stream-edits.source.timestamp",
        description="the input record's timestamp, ms since the epoch",
    )
    failed_at: datetime = Field(alias="stream-edits.failed_at")

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes]]) -> DeadLetterHeaders:
        """Read a dead letter's headers (ValidationError when they are not a dead letter's)."""
        return cls.model_validate({name: value.decode() for name, value in headers})
