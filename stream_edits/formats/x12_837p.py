"""X12 837P (005010X222A1) in, claim-line events out: one event per service line (2400 loop).

pyx12 reads the interchange: it checks the envelopes (ISA/IEA, GS/GE, ST/SE control numbers and
counts), places every segment in its 837P loop and validates each element against the
implementation guide. This module maps the loops to events and decides which claims a problem
refuses: an envelope problem every claim inside that envelope, a problem in a claim's own
segments that claim, one in a billing provider or subscriber loop (or the transaction header)
the claims under it. Positions count segments from the start of the file, ISA = 1.

Identity (docs/input-formats.md): the claim id is the payer claim control number made here from
the billing provider (2010AA NM109), CLM01, the member and the claim's segments; CLM01 goes on as
`patient_control_number`; REF*F8 of a replacement or void names the original by either number.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyx12.error_handler
import pyx12.errors
import pyx12.params
import pyx12.segment
import pyx12.x12context

from stream_edits.formats.identity import (
    dependent_member_id,
    patient_digest,
    payer_claim_number,
)
from stream_edits.formats.result import Conversion, UnreadableInput, validate_event
from stream_edits.log_safety import configure_logging
from stream_edits.models import ClaimFrequency, ClaimLineEvent, FieldError
from stream_edits.settings import DependentIdentity

IMPLEMENTATION = "005010X222A1"
_HEADERS = ("ISA", "GS", "ST")
_TRAILERS = ("IEA", "GE", "SE")  # each at the depth of its header
# Error codes pyx12 raises at an envelope's trailer (TA1 / 999 AK9 / IK5 codes): control numbers
# that disagree, counts that disagree. The others name the header.
_TRAILER_CODES = {"ISA": {"001", "021"}, "GS": {"4", "5"}, "ST": {"3", "4"}}
# HL03 hierarchical level codes of the 837P.
_BILLING_PROVIDER, _SUBSCRIBER, _PATIENT = "20", "22", "23"

EnvelopeKey = tuple[int, ...]  # (interchange,), (interchange, group), (interchange, group, set)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One segment: where it is in the file, its envelope and the 837P loop pyx12 placed it in."""

    position: int
    envelope: EnvelopeKey
    loop: str
    data: pyx12.segment.Segment

    @property
    def id(self) -> str:
        return self.data.get_seg_id() or ""

    def value(self, ref: str) -> str:
        """The element (e.g. "CLM05-3") as text, "" when absent."""
        return (self.data.get_value(ref) or "").strip()

    def at(self, ref: str | None = None) -> str:
        """A location for people: "CLM01 in CLM segment 17", or "SE segment 28"."""
        where = f"{self.id} segment {self.position}"
        return where if ref is None else f"{ref} in {where}"


@dataclass(slots=True)
class _Level:
    """An HL loop (billing provider, subscriber or patient) and its own segments."""

    hl: _Segment
    parent: _Level | None
    segments: list[_Segment] = field(default_factory=list)

    def chain(self) -> Iterator[_Level]:
        level: _Level | None = self
        while level is not None:
            yield level
            level = level.parent


@dataclass(slots=True)
class _Transaction:
    """One ST/SE transaction set: its header segments (BHT, submitter, receiver) and claims."""

    key: EnvelopeKey
    header: list[_Segment] = field(default_factory=list)
    claims: list[_Claim] = field(default_factory=list)


@dataclass(slots=True)
class _Claim:
    """A 2300 loop with its 2310x and 2400 loops, and the HL level it sits in."""

    transaction: _Transaction
    level: _Level | None
    segments: list[_Segment]

    @property
    def clm(self) -> _Segment:
        return self.segments[0]


@dataclass(slots=True)
class _Problems:
    """What pyx12 (and the checks here) found, by envelope and by segment position."""

    envelopes: defaultdict[EnvelopeKey, list[FieldError]] = field(
        default_factory=lambda: defaultdict(list)
    )
    segments: defaultdict[int, list[FieldError]] = field(default_factory=lambda: defaultdict(list))


def events_from_837p(
    text: str,
    received_at: datetime | None = None,
    dependents: DependentIdentity = DependentIdentity.SUBSCRIBER_AND_PATIENT,
) -> Conversion:
    """Claim-line events of every claim in an 837P file; each bad claim refused with its reasons.

    received_at is the BHT04/BHT05 time of the claim's transaction set, read as UTC, unless given;
    `dependents` says how a 2000C patient is identified. Raises UnreadableInput when the file is
    no X12 interchange at all.
    """
    segments, problems = _read(text)
    conversion = Conversion()
    for transaction in _transactions(segments, problems):
        for claim in transaction.claims:
            # What pyx12 found comes first; the claim's fields are read only when it found nothing.
            errors = _problems_of(claim, problems)
            events = [] if errors else _events(claim, received_at, dependents, errors)
            if errors:
                conversion.reject(claim.clm.value("CLM01") or None, claim.clm.at(), errors)
            else:
                conversion.accept(events[0][0].claim_id, events)
    return conversion


def _read(text: str) -> tuple[list[_Segment], _Problems]:
    """Every segment in its envelope and loop, and what pyx12 found wrong with them."""
    # pyx12 logs each finding (at ERROR, with the element's value): they are reported per claim
    # instead, so its loggers stay silent (log_safety.QUIET_LOGGERS), here too when the reader
    # is used as a library.
    configure_logging()
    errh = pyx12.error_handler.err_handler()
    segments: list[_Segment] = []
    problems = _Problems()
    bounds: dict[EnvelopeKey, list[_Segment]] = {}  # header, then trailer if any
    counts = [-1, -1, -1]  # ordinal of the current interchange, group and transaction set
    depth = 0  # envelopes open
    reader: pyx12.x12context.X12ContextReader | None = None
    try:
        reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), errh, io.StringIO(text))
        for node in reader.iter_segments():
            seg_id = node.seg_data.get_seg_id()
            envelope = seg_id in _HEADERS or seg_id in _TRAILERS
            if seg_id in _HEADERS:
                depth = _HEADERS.index(seg_id)
                counts[depth] += 1
                counts[depth + 1 :] = [-1] * (2 - depth)
                depth += 1
            elif seg_id in _TRAILERS:
                depth = _TRAILERS.index(seg_id) + 1
            key = tuple(counts[:depth])
            seg = _Segment(node.cur_line_number or 0, key, _loop_of(node), node.seg_data)
            segments.append(seg)
            if envelope:
                bounds.setdefault(key, []).append(seg)
                # The context reader leaves envelope elements unchecked; the control map does it.
                for error in node.x12_map_node.is_valid_errors(node.seg_data)[1]:
                    problems.envelopes[key].append(
                        FieldError(field=seg.at(error.refdes or None), message=error.err_str)
                    )
            if seg_id in _TRAILERS:
                depth -= 1
        reader.src.cleanup()  # trailers missing at the end of the file
        errh.handle_errors(reader.src.pop_errors())
    except (pyx12.errors.X12Error, pyx12.errors.EngineError) as error:
        at = reader.src.get_cur_line() if reader is not None else 1
        raise UnreadableInput(f"not a readable X12 interchange (segment {at}): {error}") from None
    finally:
        if reader is not None:
            reader.close()
    if not segments or segments[0].id != "ISA":
        raise UnreadableInput("not an X12 interchange: it does not start with an ISA segment")
    _collect(errh, {s.position: s for s in segments}, bounds, problems)
    return segments, problems


def _loop_of(node: Any) -> str:
    path: str = node.x12_map_node.get_path()
    return path.rsplit("/", 2)[-2]


def _collect(
    errh: Any,
    at: dict[int, _Segment],
    bounds: dict[EnvelopeKey, list[_Segment]],
    problems: _Problems,
) -> None:
    """Move pyx12's error tree into `problems`: envelope errors by envelope, the rest by segment."""
    for i, isa in enumerate(errh.children):
        _envelope_errors(isa, (i,), bounds, problems)
        for g, gs in enumerate(isa.children):
            _envelope_errors(gs, (i, g), bounds, problems)
            for t, st in enumerate(gs.children):
                _envelope_errors(st, (i, g, t), bounds, problems)
                for seg_node in st.children:
                    seg = at.get(seg_node.get_cur_line())
                    if seg is None:
                        continue
                    for _, message, _ in seg_node.errors:
                        problems.segments[seg.position].append(
                            FieldError(field=seg.at(), message=message)
                        )
                    for element in seg_node.elements:
                        ref = f"{seg.id}{element.ele_pos:02d}"
                        if element.subele_pos is not None:
                            ref += f"-{element.subele_pos}"
                        for _, message, _ in element.errors:
                            problems.segments[seg.position].append(
                                FieldError(field=seg.at(ref), message=message)
                            )


def _envelope_errors(
    node: Any, key: EnvelopeKey, bounds: dict[EnvelopeKey, list[_Segment]], problems: _Problems
) -> None:
    """An envelope's own errors, named by its trailer when found there (counts, control numbers)."""
    found = bounds.get(key, [])
    header = found[0] if found else None
    trailer = found[1] if len(found) > 1 else None
    for code, message in node.errors:
        seg = trailer if trailer is not None and code in _TRAILER_CODES[node.id] else header
        where = seg.at() if seg is not None else f"{node.id} envelope"
        problems.envelopes[key].append(FieldError(field=where, message=message))


def _transactions(segments: list[_Segment], problems: _Problems) -> list[_Transaction]:
    """Group the segments into transaction sets, HL levels and claims."""
    transactions: list[_Transaction] = []
    transaction: _Transaction | None = None
    levels: dict[str, _Level] = {}
    level: _Level | None = None
    claim: _Claim | None = None
    for seg in segments:
        if seg.id == "GS" and seg.value("GS08") != IMPLEMENTATION:
            problems.envelopes[seg.envelope].append(
                FieldError(
                    field=seg.at("GS08"), message=f"not an 837P {IMPLEMENTATION} functional group"
                )
            )
        if seg.id == "ST":
            transaction = _Transaction(seg.envelope)
            transactions.append(transaction)
            levels, level, claim = {}, None, None
        elif transaction is None or seg.id in _HEADERS or seg.id in _TRAILERS:
            claim = None
        elif seg.id == "HL":
            level = _Level(seg, levels.get(seg.value("HL02")))
            levels[seg.value("HL01")] = level
            claim = None
        elif seg.id == "CLM":
            claim = _Claim(transaction, level, [seg])
            transaction.claims.append(claim)
        elif claim is not None:
            claim.segments.append(seg)
        elif level is not None:
            level.segments.append(seg)
        else:
            transaction.header.append(seg)
    return transactions


def _problems_of(claim: _Claim, problems: _Problems) -> list[FieldError]:
    key = claim.transaction.key
    errors = [e for depth in (1, 2, 3) for e in problems.envelopes.get(key[:depth], [])]
    depends_on = [*claim.transaction.header, *claim.segments]
    if claim.level is not None:
        for level in claim.level.chain():
            depends_on += [level.hl, *level.segments]
    for seg in sorted(depends_on, key=lambda s: s.position):
        errors += problems.segments.get(seg.position, [])
    return errors


@dataclass(slots=True)
class _Line:
    """A 2400 loop: LX, SV1, its DTP*472 and 2420A rendering provider, if any."""

    lx: _Segment
    sv1: _Segment | None = None
    service_date: _Segment | None = None
    rendering: _Segment | None = None


def _events(
    claim: _Claim,
    received_at: datetime | None,
    dependents: DependentIdentity,
    errors: list[FieldError],
) -> list[tuple[ClaimLineEvent, str]]:
    """The claim's events with the location of each; why one cannot be made goes to `errors`."""
    clm = claim.clm
    frequency = clm.value("CLM05-3")
    common: dict[str, Any] = {
        "patient_control_number": clm.value("CLM01"),
        "claim_frequency": frequency,
    }
    sources = {
        "claim_id": clm.at("CLM01"),
        "patient_control_number": clm.at("CLM01"),
        "claim_frequency": clm.at("CLM05-3"),
    }
    member = _member(claim, dependents)
    if isinstance(member, FieldError):
        errors.append(member)
    elif member is not None:
        common["member_id"], sources["member_id"] = member
    billing = _billing_provider(claim)
    if billing is None:
        errors.append(FieldError(field=clm.at(), message="no billing provider (2010AA NM1*85)"))
    else:
        common["billing_provider"] = billing.value("NM109")
        sources["billing_provider"] = billing.at("NM109")
    if received_at is None:
        bht = next((s for s in claim.transaction.header if s.id == "BHT"), None)
        if bht is not None:
            common["received_at"] = _bht_time(bht)
            sources["received_at"] = bht.at("BHT04")
    else:
        common["received_at"] = received_at
    original = _first(claim.segments, "REF", "2300", REF01="F8")
    if original is not None:
        common["original_claim_id"] = original.value("REF02")
        sources["original_claim_id"] = original.at("REF02")
    elif frequency in (ClaimFrequency.REPLACEMENT, ClaimFrequency.VOID):
        kind = "replacement" if frequency == ClaimFrequency.REPLACEMENT else "void"
        message = (
            f"a {kind} ({frequency}) needs REF*F8 in loop 2300 naming the claim it corrects (its "
            "payer claim control number, or its CLM01)"
        )
        errors.append(FieldError(field=clm.at("CLM05-3"), message=message))
        return []
    content = "".join(seg.data.format() for seg in claim.segments).encode()
    common["claim_id"] = payer_claim_number(
        common.get("billing_provider", ""),
        common["patient_control_number"],
        common.get("member_id", ""),
        content,
    )
    if frequency == ClaimFrequency.VOID:
        # A void is one event for the whole claim: its service lines only repeat the original's.
        event = validate_event(common, sources, clm.at())
        if isinstance(event, list):
            errors += event
            return []
        return [(event, clm.at())]
    out: list[tuple[ClaimLineEvent, str]] = []
    for line in _lines(claim):
        fields, line_sources = dict(common), dict(sources)
        errors += _line_fields(claim, line, fields, line_sources)
        event = validate_event(fields, line_sources, line.lx.at())
        if isinstance(event, list):
            errors += event
        else:
            out.append((event, line.lx.at()))
    return out


def _member(claim: _Claim, dependents: DependentIdentity) -> tuple[str, str] | FieldError | None:
    """The member id and where it comes from: the subscriber's NM109 (2010BA), and for a 2000C
    dependent patient as `dependents` says."""
    if claim.level is None:
        return None
    patient: _Level | None = None
    for level in claim.level.chain():
        code = level.hl.value("HL03")
        if code == _PATIENT:
            patient = level
        elif code == _SUBSCRIBER:
            name = _first(level.segments, "NM1", "2010BA", NM101="IL")
            if name is None:
                return None
            if patient is None:
                return name.value("NM109"), name.at("NM109")
            return _dependent(patient, name, dependents)
    return None


def _dependent(
    patient: _Level, subscriber: _Segment, dependents: DependentIdentity
) -> tuple[str, str] | FieldError:
    """A 2000C patient's member id: the subscriber's id and a digest of name and birth date."""
    if dependents is DependentIdentity.PATIENT_MEMBER_ID:
        return FieldError(
            field=patient.hl.at(),
            message="the patient is a dependent (loop 2000C), which 005010 gives no member id; "
            "with dependents identified by their own member id, send the patient as the "
            "subscriber (2000B, SBR02 18)",
        )
    name = _first(patient.segments, "NM1", "2010CA", NM101="QC")
    birth = _first(patient.segments, "DMG", "2010CA")
    if name is None or birth is None or not name.value("NM103") or not birth.value("DMG02"):
        return FieldError(
            field=patient.hl.at(),
            message="a dependent (loop 2000C) is identified by its name (2010CA NM103, NM104) "
            "and birth date (DMG02)",
        )
    digest = patient_digest(name.value("NM103"), name.value("NM104"), birth.value("DMG02"))
    where = f"{subscriber.at('NM109')} with {name.at()} and {birth.at('DMG02')}"
    return dependent_member_id(subscriber.value("NM109"), digest), where


def _lines(claim: _Claim) -> list[_Line]:
    lines: list[_Line] = []
    for seg in claim.segments:
        if seg.id == "LX" and seg.loop == "2400":
            lines.append(_Line(seg))
        elif not lines:
            continue
        elif seg.id == "SV1" and seg.loop == "2400":
            lines[-1].sv1 = seg
        elif seg.id == "DTP" and seg.loop == "2400" and seg.value("DTP01") == "472":
            lines[-1].service_date = seg
        elif seg.id == "NM1" and seg.loop == "2420A":
            lines[-1].rendering = seg
    return lines


def _line_fields(
    claim: _Claim, line: _Line, fields: dict[str, Any], sources: dict[str, str]
) -> list[FieldError]:
    """Fill a service line's fields into `fields` (and where each came from into `sources`)."""
    errors: list[FieldError] = []
    lx = line.lx.value("LX01")
    fields["line_number"] = int(lx) if lx.isdigit() else lx
    sources["line_number"] = line.lx.at("LX01")
    sv1 = line.sv1
    if sv1 is None:
        return [FieldError(field=line.lx.at(), message="service line has no SV1 segment")]
    if sv1.value("SV101-1") != "HC":
        errors.append(
            FieldError(
                field=sv1.at("SV101-1"), message="only HC (HCPCS/CPT) procedure codes are decided"
            )
        )
    fields["procedure_code"] = sv1.value("SV101-2")
    sources["procedure_code"] = sv1.at("SV101-2")
    fields["modifiers"] = [m for n in (3, 4, 5, 6) if (m := sv1.value(f"SV101-{n}"))]
    sources["modifiers"] = sv1.at("SV101-3")
    if sv1.value("SV103") != "UN":
        errors.append(
            FieldError(field=sv1.at("SV103"), message="units must be counted in units (UN)")
        )
    fields["units"] = _whole(sv1.value("SV104"))
    sources["units"] = sv1.at("SV104")
    rendering = (
        line.rendering
        or _first(claim.segments, "NM1", "2310B", NM101="82")
        or _billing_provider(claim)
    )
    if rendering is not None:
        if rendering.value("NM108") != "XX":
            errors.append(FieldError(field=rendering.at("NM108"), message="must be XX (NPI)"))
        fields["provider_npi"] = rendering.value("NM109")
        sources["provider_npi"] = rendering.at("NM109")
    # The IG requires DTP*472 in every 2400 loop and has none in 2300 (pyx12 refuses one there).
    service_date = line.service_date
    if service_date is not None:
        day = _service_date(service_date)
        fields["date_of_service"] = day if day is not None else service_date.value("DTP03")
        sources["date_of_service"] = service_date.at("DTP03")
    return errors


def _billing_provider(claim: _Claim) -> _Segment | None:
    if claim.level is None:
        return None
    for level in claim.level.chain():
        if level.hl.value("HL03") == _BILLING_PROVIDER:
            return _first(level.segments, "NM1", "2010AA", NM101="85")
    return None


def _first(segments: list[_Segment], seg_id: str, loop: str, **values: str) -> _Segment | None:
    """The first segment of `seg_id` in `loop` whose elements have `values`."""
    for seg in segments:
        if (seg.id, seg.loop) == (seg_id, loop) and all(
            seg.value(ref) == want for ref, want in values.items()
        ):
            return seg
    return None


def _whole(text: str) -> int | str:
    """SV104 as a whole number of units; the text itself (refused by the model) otherwise."""
    number, _, fraction = text.partition(".")
    if number.isdigit() and fraction.strip("0") == "":
        return int(number)
    return text


def _service_date(seg: _Segment) -> date | None:
    """DTP03 as a date: D8 the day, RD8 the first day of the range."""
    text = seg.value("DTP03")
    if seg.value("DTP02") == "RD8":
        text = text.partition("-")[0]
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _bht_time(bht: _Segment) -> datetime | str:
    """BHT04 (CCYYMMDD) and BHT05 (HHMM[SS[D[D]]]) as a UTC time; the text when not a time."""
    text = bht.value("BHT04") + bht.value("BHT05")[:6].ljust(6, "0")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return text
