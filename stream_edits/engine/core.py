"""The incremental engine: one event in, exactly the lines whose decision changed out.

State lives in two mappings the caller owns (plain dicts offline, Faust tables in the stream):
claim entries keyed (member_id, claim_id) and days keyed (member_id, date_of_service). The engine
reads and writes them only through `get` and `[key] = value`, so a write-back cache can stand in
front of a table.

A claim id is the payer claim control number. A correction (replacement or void) names its
original in `original_claim_id`: it retracts the claim of that id, and, when the correction carries
a patient control number or billing provider, every claim of the member with that patient control
number under the same billing provider received before it (ordered by (received_at, claim_id)),
never the correction itself. The claims carrying a patient control number and the corrections
naming one meet in an entry of the claims map keyed by `number_key`, so whichever arrives first
the outcome is the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

import orjson

from stream_edits.engine.decide import VOID, Verdict, decide_group, same_before_causes
from stream_edits.engine.state import Cause, ClaimEntry, ClaimLine, DayLine, DayState
from stream_edits.models import (
    ClaimFrequency,
    ClaimLineEvent,
    Edit,
    FieldError,
    RejectCode,
    Rejection,
    Status,
)
from stream_edits.rules.tables import RuleSet

ClaimKey = tuple[str, str]
DayKey = tuple[str, date]
K = TypeVar("K", contravariant=True)
V = TypeVar("V")


class StateMap(Protocol[K, V]):
    """The part of a mapping the engine uses: a dict, or a write-back cache over a table."""

    def get(self, key: K, /) -> V | None: ...

    def __setitem__(self, key: K, value: V, /) -> None: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Enum members bound once: looking one up on its class goes through a descriptor on every access.
_REPLACEMENT = ClaimFrequency.REPLACEMENT
_ACCEPT, _VOID = Status.ACCEPT, Status.VOID
_STATUS_OF = {s.value: s for s in Status}


def fingerprint(event: ClaimLineEvent) -> str:
    """A stable digest of an event's content: equal for an exact redelivery, unequal otherwise."""
    # Every field value in model order, then the extra fields, as orjson bytes: the same content
    # model_dump_json covers, at a third of its cost (dates and zones as ISO text, enums as values).
    content = orjson.dumps([*event.__dict__.values(), event.__pydantic_extra__])
    return hashlib.blake2b(content, digest_size=8).hexdigest()


def received_us(event: ClaimLineEvent) -> int:
    """received_at as integer microseconds since the epoch (an exact, zone-free order key)."""
    delta = event.received_at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(slots=True)
class LineDecision:
    """A line's decision as the engine emits it; `to_wire` gives the published/printed form.

    Not frozen: a frozen dataclass's __init__ costs a setattr call per field, on every line.
    """

    claim_id: str
    line_number: int
    member_id: str
    date_of_service: date
    procedure_code: str
    provider_npi: str
    status: Status
    edits: tuple[Edit, ...]
    revision: int
    changed_by: Cause | None  # the event whose arrival made this revision (None: not known)
    patient_control_number: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (the `check` output; the stream adds its fields)."""
        wire = {
            "claim_id": self.claim_id,
            "line_number": self.line_number,
            "member_id": self.member_id,
            "date_of_service": self.date_of_service.isoformat(),
            "procedure_code": self.procedure_code,
            "status": str(self.status),  # the StrEnum's value, without Enum's property
            "edits": [e.model_dump(mode="json", exclude_none=True) for e in self.edits]
            if self.edits
            else [],
            "revision": self.revision,
            "changed_by": _cause_json(self.changed_by),
        }
        if self.patient_control_number is not None:
            wire["patient_control_number"] = self.patient_control_number
        return wire


def _cause_json(cause: Cause | None) -> dict[str, Any] | None:
    return None if cause is None else {"claim_id": cause[0], "line_number": cause[1]}


@dataclass(slots=True)
class Outcome:
    """What one event did: changed decisions, or why it was refused. A redelivery does nothing."""

    decisions: list[LineDecision] = field(default_factory=list)
    rejection: Rejection | None = None
    duplicate: bool = False
    unresolved: bool = False  # a correction naming no known claim (`unresolved_reference`)


class EditEngine:
    """Applies claim-line events to state and reports every decision they change."""

    def __init__(
        self,
        rules: RuleSet,
        claims: StateMap[ClaimKey, ClaimEntry] | None = None,
        days: StateMap[DayKey, DayState] | None = None,
    ) -> None:
        self.rules = rules
        self.claims: StateMap[ClaimKey, ClaimEntry] = {} if claims is None else claims
        self.days: StateMap[DayKey, DayState] = {} if days is None else days
        self._arrival: Cause = ("", None)  # the event being applied: it causes every revision

    def process(self, event: ClaimLineEvent) -> Outcome:
        """Apply one event; return exactly the lines whose decision changed."""
        self._arrival = (event.claim_id, event.line_number)
        if event.is_void:
            return self._void(event)
        return self._line(event)

    def resolves(self, event: ClaimLineEvent) -> bool:
        """True when the claim a correction names is known: a claim of that id, or one with that
        patient control number under the same billing provider received before the correction."""
        ref, member = event.original_claim_id, event.member_id
        if ref is None:
            return True
        target = self.claims.get((member, ref))
        if target is not None and (target.lines or target.void_fingerprint is not None):
            return True
        return bool(self._held_before(event))

    def restate_day(self, member_id: str, dos: date) -> list[LineDecision]:
        """Every current decision of a member's day (its rule-relevant lines); changes nothing."""
        day = self.days.get((member_id, dos))
        if day is None:
            return []
        verdicts = self._verdicts(day, dos, {ln.npi for ln in day.lines.values()})
        return [
            self._decision(member_id, dos, day.lines[key], verdict)
            for key, verdict in sorted(verdicts.items())
        ]

    def restate_event(self, event: ClaimLineEvent) -> list[LineDecision]:
        """Current decisions of every line `event` can have changed, for idempotent re-publication.

        The shell calls this for a redelivered event: after a crash the state may hold the event's
        effect while its published decisions were lost. It also re-puts the state it reads, so a
        write-back table cache sends it to the changelog again.
        """
        out: list[LineDecision] = []
        member, ref = event.member_id, event.original_claim_id
        if event.line_number is not None:
            out += self._claim_decisions(member, event.claim_id, event.line_number)
        if ref is not None:
            out += self._claim_decisions(member, ref, None)
            for held in self._held_before(event):
                out += self._claim_decisions(member, held, None)
        return out

    def _claim_decisions(self, member: str, claim_id: str, only: int | None) -> list[LineDecision]:
        entry = self.claims.get((member, claim_id))
        if entry is None:
            return []
        self.claims[(member, claim_id)] = entry
        out: list[LineDecision] = []
        dates: set[date] = set()
        for number, line in sorted(entry.lines.items()):
            if only is not None and number != only:
                continue
            if line.in_day:
                dates.add(line.dos)
            else:
                out.append(_stub_decision(member, claim_id, number, line, entry))
        for dos in sorted(dates):
            day = self.days.get((member, dos))
            if day is not None:
                self.days[(member, dos)] = day
                out += self.restate_day(member, dos)
        return out

    # -- events ---------------------------------------------------------------------------------

    def _line(self, event: ClaimLineEvent) -> Outcome:
        assert event.line_number is not None and event.date_of_service is not None
        assert event.procedure_code is not None and event.provider_npi is not None
        member, claim_id, number = event.member_id, event.claim_id, event.line_number
        fp = fingerprint(event)
        entry = self.claims.get((member, claim_id)) or ClaimEntry()
        if entry.void_fingerprint is not None:
            return _conflict(f"claim_id {claim_id} was already used by a void event")
        known = entry.lines.get(number)
        if known is not None:
            if known.fingerprint == fp:
                return Outcome(duplicate=True)
            return _conflict(
                f"line ({claim_id}, {number}) was already received with different content; "
                "the first stays"
            )
        first = not entry.lines
        decisions: list[LineDecision] = []
        today = max(event.date_of_service.toordinal(), event.received_at.date().toordinal())
        if event.patient_control_number is not None and self._hold(event, today):
            decisions += self._retract(member, claim_id, today)
            entry = self.claims.get((member, claim_id)) or entry
        unresolved = False
        if event.claim_frequency is _REPLACEMENT:
            unresolved = first and not self.resolves(event)
            decisions += self._correct(event, today)
        dos, code = event.date_of_service, event.procedure_code
        entry.touch(today)
        entry.patient_control_number = event.patient_control_number
        if self.rules.mentions(code):
            entry.lines[number] = ClaimLine(fp, dos, True)
            day = self.days.get((member, dos)) or DayState()
            day.lines[(claim_id, number)] = DayLine(
                claim_id,
                number,
                code,
                event.provider_npi,
                event.units,
                tuple(event.modifiers),
                received_us(event),
                voided=entry.retracted,
                patient_control_number=event.patient_control_number,
            )
            day.last_day = max(day.last_day, today)
            decisions += self._redecide(member, dos, day, {event.provider_npi})
            self.days[(member, dos)] = day
        else:
            status = _VOID if entry.retracted else _ACCEPT
            stub = ClaimLine(fp, dos, False, code, event.provider_npi, status, 1, self._arrival)
            entry.lines[number] = stub
            decisions.append(_stub_decision(member, claim_id, number, stub, entry))
        self.claims[(member, claim_id)] = entry
        return Outcome(decisions, unresolved=unresolved)

    def _void(self, event: ClaimLineEvent) -> Outcome:
        assert event.original_claim_id is not None
        member = event.member_id
        fp = fingerprint(event)
        entry = self.claims.get((member, event.claim_id)) or ClaimEntry()
        if entry.lines:
            return _conflict(
                f"claim_id {event.claim_id} already carries lines; a void needs its own"
            )
        if entry.void_fingerprint is not None:
            if entry.void_fingerprint == fp:
                return Outcome(duplicate=True)
            return _conflict(f"void {event.claim_id} was already received with different content")
        today = event.received_at.date().toordinal()
        unresolved = not self.resolves(event)
        entry.void_fingerprint = fp
        entry.touch(today)
        entry.patient_control_number = event.patient_control_number
        self.claims[(member, event.claim_id)] = entry
        return Outcome(self._correct(event, today), unresolved=unresolved)

    def _correct(self, event: ClaimLineEvent, today: int) -> list[LineDecision]:
        """Retract what a correction names: the claim of that id, and the claims of that patient
        control number under its billing provider received before it."""
        member, ref = event.member_id, event.original_claim_id
        assert ref is not None
        decisions = self._retract(member, ref, today)
        if not _names_by_number(event):
            return decisions
        key = (member, number_key(event.billing_provider, ref))
        alias = self.claims.get(key) or ClaimEntry()
        at = received_us(event)
        if alias.references.get(event.claim_id, at + 1) > at:
            alias.references[event.claim_id] = at
        alias.touch(today)
        self.claims[key] = alias
        for held in self._held_before(event):
            decisions += self._retract(member, held, today)
        return decisions

    def _held_before(self, event: ClaimLineEvent) -> list[str]:
        """The claims with the patient control number a correction names, received before it."""
        ref = event.original_claim_id
        if ref is None or not _names_by_number(event):
            return []
        alias = self.claims.get((event.member_id, number_key(event.billing_provider, ref)))
        if alias is None:
            return []
        mark = (received_us(event), event.claim_id)
        return sorted(
            held
            for held, at in alias.holders.items()
            if held != event.claim_id and (at, held) < mark
        )

    def _hold(self, event: ClaimLineEvent, today: int) -> bool:
        """Register a claim under its patient control number; True when a correction received
        after it names that number (the claim is then retracted, as if that came second)."""
        assert event.patient_control_number is not None
        claim_id = event.claim_id
        key = (event.member_id, number_key(event.billing_provider, event.patient_control_number))
        alias = self.claims.get(key) or ClaimEntry()
        at = received_us(event)
        known = alias.holders.get(claim_id)
        if known is not None and known <= at:
            return False
        alias.holders[claim_id] = at
        alias.touch(today)
        self.claims[key] = alias
        return any(
            (at, claim_id) < (when, other)
            for other, when in alias.references.items()
            if other != claim_id
        )

    def _retract(self, member: str, claim_id: str, today: int) -> list[LineDecision]:
        """Void every line of `claim_id` (now or when they arrive) and re-decide their days."""
        entry = self.claims.get((member, claim_id)) or ClaimEntry()
        entry.touch(today)
        if entry.retracted:
            self.claims[(member, claim_id)] = entry
            return []
        entry.retracted = True
        decisions: list[LineDecision] = []
        touched: dict[date, set[str]] = {}
        for number, known in sorted(entry.lines.items()):
            if known.in_day:
                touched.setdefault(known.dos, set())
            elif known.status != _VOID:
                known.status = _VOID
                known.revision += 1
                known.changed_by = self._arrival
                decisions.append(_stub_decision(member, claim_id, number, known, entry))
        for dos in sorted(touched):
            day = self.days.get((member, dos))
            if day is None:  # expired beyond the horizon: nothing left to re-decide
                continue
            npis = set()
            for line in day.lines.values():
                if line.claim_id == claim_id:
                    line.voided = True
                    npis.add(line.npi)
            decisions += self._redecide(member, dos, day, npis)
            self.days[(member, dos)] = day
        self.claims[(member, claim_id)] = entry
        return decisions

    # -- deciding -------------------------------------------------------------------------------

    def _verdicts(
        self, day: DayState, dos: date, npis: Iterable[str]
    ) -> dict[tuple[str, int], Verdict]:
        verdicts: dict[tuple[str, int], Verdict] = {}
        for npi in npis:
            live: list[DayLine] = []
            for key, line in day.lines.items():
                if line.npi != npi:
                    continue
                if line.voided:
                    verdicts[key] = VOID
                else:
                    live.append(line)
            for line, verdict in zip(live, decide_group(live, dos, self.rules), strict=True):
                verdicts[(line.claim_id, line.line_number)] = verdict
        return verdicts

    def _redecide(
        self, member: str, dos: date, day: DayState, npis: Iterable[str]
    ) -> list[LineDecision]:
        changed: list[LineDecision] = []
        for key, verdict in sorted(self._verdicts(day, dos, npis).items()):
            line = day.lines[key]
            signature = verdict.signature
            if signature != line.signature:
                # State of WIRE_VERSION 1 kept no related lines: the same decision, restated.
                restated = line.revision > 0 and same_before_causes(signature, line.signature)
                line.signature = signature
                if restated:
                    continue
                line.revision += 1
                line.changed_by = self._arrival
                changed.append(self._decision(member, dos, line, verdict))
        return changed

    @staticmethod
    def _decision(member: str, dos: date, line: DayLine, verdict: Verdict) -> LineDecision:
        return LineDecision(
            line.claim_id,
            line.line_number,
            member,
            dos,
            line.code,
            line.npi,
            verdict.status,
            verdict.edits,
            line.revision,
            line.changed_by,
            line.patient_control_number,
        )


def number_key(billing_provider: str | None, patient_control_number: str) -> str:
    """The claims-map id of the entry that links a patient control number under a billing
    provider to its claims and corrections (NUL-led: no claim id starts so)."""
    return f"\x00{billing_provider or ''}\x00{patient_control_number}"


def _names_by_number(event: ClaimLineEvent) -> bool:
    """True when a correction may name its original by patient control number: it carries one,
    or its billing provider (payers' own NDJSON systems name originals by claim id only)."""
    return event.patient_control_number is not None or event.billing_provider is not None


def unresolved_reference(event: ClaimLineEvent) -> Rejection:
    """The notice for a correction whose original is not known (its lines are decided anyway)."""
    kind = "void" if event.is_void else "replacement"
    return Rejection(
        reason=(
            f"unresolved_reference: {kind} {event.claim_id} names {event.original_claim_id}, "
            "which matches no claim of the member (by payer claim control number, or by patient "
            "control number under its billing provider, received before it); it is applied, and "
            "the claim it names is voided if it arrives later"
        ),
        code=RejectCode.UNRESOLVED_REFERENCE,
        errors=[FieldError(field="original_claim_id", message="matches no known claim")],
        claim_id=event.claim_id,
    )


def _stub_decision(
    member: str, claim_id: str, number: int, line: ClaimLine, entry: ClaimEntry | None = None
) -> LineDecision:
    return LineDecision(
        claim_id,
        number,
        member,
        line.dos,
        line.code,
        line.npi,
        _STATUS_OF[line.status],
        (),
        line.revision,
        line.changed_by,
        None if entry is None else entry.patient_control_number,
    )


def _conflict(reason: str) -> Outcome:
    return Outcome(rejection=Rejection(reason=f"conflict: {reason}", code=RejectCode.CONFLICT))
