"""Engine state: a claim entry per (member, claim) and a day per (member, date of service).

Both serialise to compact orjson-ready lists. A day holds only lines of codes some rule mentions;
a line no rule mentions is decided alone and kept as a small stub in its claim entry, so a void
or a replacement can still republish it. State keeps only what the rules and re-publication need:
never a producer's pass-through fields, so a member's state grows by a bounded size per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

# 2: a stub and a day line end with the cause of their current revision (`changed_by`). Version 1
# forms are read as ever, their causes unknown but for a first revision (its own arrival).
WIRE_VERSION = 2
_DAY_LINE_WITH_EXTRAS = 11  # the length of a version 1 day line's wire form that held extras

# The event whose arrival made a revision: (claim_id, line_number), line_number None for a void.
Cause = tuple[str, int | None]


def cause_to_wire(cause: Cause | None) -> list[Any] | None:
    """A cause as a JSON-ready list (None when not known)."""
    return None if cause is None else [cause[0], cause[1]]


def cause_from_wire(raw: list[Any] | None) -> Cause | None:
    """Inverse of cause_to_wire."""
    return None if raw is None else (raw[0], raw[1])


def _v1_cause(own: Cause, revision: int) -> Cause | None:
    # A first revision is made by the line's own arrival; a later one's cause was not kept.
    return own if revision == 1 else None


@dataclass(slots=True)
class ClaimLine:
    """A line as its claim entry knows it: enough to spot a redelivery and find its day."""

    fingerprint: str
    dos: date
    in_day: bool  # True: the line lives in its day's state; False: a stub decided alone
    code: str = ""
    npi: str = ""
    status: str = ""
    revision: int = 0
    changed_by: Cause | None = None  # a stub's: the event that made its current revision

    def to_wire(self) -> list[Any]:
        """Compact list form."""
        head: list[Any] = [self.fingerprint, self.dos.toordinal()]
        if self.in_day:
            return head
        cause = cause_to_wire(self.changed_by)
        return [*head, self.code, self.npi, self.status, self.revision, cause]

    @classmethod
    def from_wire(cls, raw: list[Any], own: Cause, version: int = WIRE_VERSION) -> ClaimLine:
        """Inverse of to_wire; `own` is the line's (claim_id, line_number). A version 1 stub
        stored with pass-through fields, as before, loses them."""
        dos = date.fromordinal(raw[1])
        if len(raw) == 2:
            return cls(raw[0], dos, True)
        cause = _v1_cause(own, raw[5]) if version == 1 else cause_from_wire(raw[6])
        return cls(raw[0], dos, False, raw[2], raw[3], raw[4], raw[5], cause)


@dataclass(slots=True)
class ClaimEntry:
    """What is known of one claim id of one member.

    `retracted` is set when any replacement or void of the member names this claim, even before
    the claim itself arrives. `void_fingerprint` is set when this claim id is itself a void.
    `last_day` is the newest of its dates of service and receipt dates, for expiry.

    `patient_control_number` is the provider's own number of the claim (CLM01), when sent. An
    entry keyed by a patient control number under a billing provider (`engine.core.number_key`)
    instead lists the claims that carry that number (`holders`) and the corrections that name
    it (`references`), each with its earliest received_at in microseconds.
    """

    lines: dict[int, ClaimLine] = field(default_factory=dict)
    retracted: bool = False
    void_fingerprint: str | None = None
    last_day: int = 0
    patient_control_number: str | None = None
    holders: dict[str, int] = field(default_factory=dict)
    references: dict[str, int] = field(default_factory=dict)

    def touch(self, day: int) -> None:
        """Keep the entry alive at least until `day` (an ordinal) plus the horizon."""
        self.last_day = max(self.last_day, day)

    def to_wire(self) -> list[Any]:
        """Compact list form; the identity fields come as one dict before `last_day` only when
        any is set, so an entry without them keeps the shorter form."""
        wire: list[Any] = [
            WIRE_VERSION,
            {str(n): ln.to_wire() for n, ln in self.lines.items()},
            self.retracted,
            self.void_fingerprint,
        ]
        identity: dict[str, Any] = {}
        if self.patient_control_number is not None:
            identity["n"] = self.patient_control_number
        if self.holders:
            identity["h"] = self.holders
        if self.references:
            identity["r"] = self.references
        if identity:
            wire.append(identity)
        wire.append(self.last_day)  # always last: the stream's expiry reads it undecoded
        return wire

    @classmethod
    def from_wire(cls, raw: list[Any], claim_id: str) -> ClaimEntry:
        """Inverse of to_wire, of this version or an older one; `claim_id` is the entry's key."""
        version, lines, retracted, void_fp, *rest, last_day = raw
        identity: dict[str, Any] = rest[0] if rest else {}
        return cls(
            {int(n): ClaimLine.from_wire(v, (claim_id, int(n)), version) for n, v in lines.items()},
            retracted,
            void_fp,
            last_day,
            identity.get("n"),
            dict(identity.get("h", {})),
            dict(identity.get("r", {})),
        )


@dataclass(slots=True)
class DayLine:
    """A rule-relevant line in its day: the facts the rules read and its current decision."""

    claim_id: str
    line_number: int
    code: str
    npi: str
    units: int
    modifiers: tuple[str, ...]
    received_us: int
    voided: bool = False
    signature: list[Any] | None = None  # the current verdict's signature, for change detection
    revision: int = 0
    changed_by: Cause | None = None  # the event that made the current revision (None: not known)
    patient_control_number: str | None = None

    def to_wire(self) -> list[Any]:
        """Compact list form: the claim id slot holds [claim_id, patient_control_number] when the
        line has one."""
        number = self.patient_control_number
        return [
            self.claim_id if number is None else [self.claim_id, number],
            self.line_number,
            self.code,
            self.npi,
            self.units,
            list(self.modifiers),
            self.received_us,
            self.voided,
            self.signature,
            self.revision,
            cause_to_wire(self.changed_by),
        ]

    @classmethod
    def from_wire(cls, raw: list[Any], version: int = WIRE_VERSION) -> DayLine:
        """Inverse of to_wire, of this version or an older one (a version 1 line stored with
        pass-through fields, as before, loses them)."""
        if version == 1:
            if len(raw) == _DAY_LINE_WITH_EXTRAS:
                raw = raw[:7] + raw[8:]
            raw = [*raw, cause_to_wire(_v1_cause((raw[0], raw[1]), raw[9]))]
        c, n, code, npi, units, mods, rec, voided, sig, rev, cause = raw
        number = None
        if isinstance(c, list):
            c, number = c
        changed_by = cause_from_wire(cause)
        return cls(c, n, code, npi, units, tuple(mods), rec, voided, sig, rev, changed_by, number)


@dataclass(slots=True)
class DayState:
    """The rule-relevant lines of one member on one date of service, with `last_day` for expiry."""

    lines: dict[tuple[str, int], DayLine] = field(default_factory=dict)
    last_day: int = 0

    def to_wire(self) -> list[Any]:
        """Compact list form."""
        return [WIRE_VERSION, [ln.to_wire() for ln in self.lines.values()], self.last_day]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> DayState:
        """Inverse of to_wire, of this version or an older one."""
        version, lines, last_day = raw
        parsed = (DayLine.from_wire(v, version) for v in lines)
        return cls({(ln.claim_id, ln.line_number): ln for ln in parsed}, last_day)
