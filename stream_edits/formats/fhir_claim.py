"""FHIR R4 Claim in (one resource, a Bundle, or NDJSON of either), claim-line events out: one
event per `item`.

fhir.resources validates every resource against the FHIR model (its R4B package: Claim and the
types it uses are the same in R4 and R4B); a resource that fails is refused naming the path of
each failing element, e.g. `Bundle.entry[2].resource.item[0].productOrService`. Each Claim of a
Bundle is validated alone, so one bad Claim does not refuse the others. References to a Patient,
Practitioner, Organization, Coverage or prior Claim are followed within the same Bundle.

Identity (docs/input-formats.md): the member is the focal insurance's Coverage (subscriberId, or
an identifier of type MB), else Claim.patient.identifier, else a Patient identifier of type MB;
never an MRN. The claim id is the payer claim control number made here from Claim.provider's
NPI, Claim.identifier, the member and the resource; Claim.identifier goes on as
`patient_control_number`. `related` (prior/replaces) names the original by either number, and a
cancelled Claim naming none voids the claims sent before it under its own identifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claim import Claim, ClaimCareTeam, ClaimItem
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.reference import Reference
from pydantic import BaseModel, ValidationError

from stream_edits.formats.identity import (
    dependent_member_id,
    patient_digest,
    payer_claim_number,
)
from stream_edits.formats.result import Conversion, UnreadableInput, validate_event
from stream_edits.models import ClaimLineEvent, FieldError
from stream_edits.settings import DependentIdentity

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
# CPT, and HCPCS Level II by its OID and by its CMS URL.
PROCEDURE_SYSTEMS = (
    "http://www.ama-assn.org/go/cpt",
    "urn:oid:2.16.840.1.113883.6.285",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
)
MEMBER_NUMBER = "MB"  # identifier type (v2-0203) of a payer's member number
# related.relationship of the claim a replacement or void takes back ("replaces" is not in the
# R4 example code system, but senders use it).
PRIOR_RELATIONSHIPS = ("prior", "replaces")
SELF = "self"  # Coverage.relationship of a subscriber who is the patient
RENDERING_ROLES = ("rendering", "primary")  # careTeam.role of the provider who did the service
VOID_STATUSES = ("cancelled", "entered-in-error")


@dataclass(slots=True)
class _Bundle:
    """A Bundle's entries by fullUrl and by Type/id, for following references."""

    entries: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, path: str, entry: dict[str, Any]) -> None:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            return
        if isinstance(entry.get("fullUrl"), str):
            self.entries[entry["fullUrl"]] = (path, resource)
        if isinstance(resource.get("id"), str):
            self.entries[f"{resource.get('resourceType')}/{resource['id']}"] = (path, resource)

    def find(self, reference: str | None) -> tuple[str, dict[str, Any]] | None:
        """The entry a reference names: its fullUrl, Type/id, or an absolute URL ending so."""
        if reference is None:
            return None
        if reference in self.entries:
            return self.entries[reference]
        tail = "/".join(reference.rstrip("/").split("/")[-2:])
        return self.entries.get(tail)


@dataclass(frozen=True, slots=True)
class _Intake:
    """What every Claim of one conversion shares: its received_at override and dependents rule."""

    received_at: datetime | None
    dependents: DependentIdentity


def events_from_fhir(
    text: str,
    received_at: datetime | None = None,
    dependents: DependentIdentity = DependentIdentity.SUBSCRIBER_AND_PATIENT,
) -> Conversion:
    """Claim-line events of every Claim; each bad Claim refused naming the paths that failed.

    received_at is the Claim's `created` (a date alone: midnight UTC) unless given; `dependents`
    says how a dependent patient is identified. Raises UnreadableInput when the text is neither
    JSON nor NDJSON.
    """
    conversion = Conversion()
    intake = _Intake(received_at, dependents)
    for prefix, document in _documents(text, conversion):
        kind = document.get("resourceType")
        if kind == "Bundle":
            _bundle(prefix, document, intake, conversion)
        elif kind == "Claim":
            _claim(f"{prefix}Claim", document, _Bundle(), [], intake, conversion)
        else:
            where = f"{prefix}{kind if isinstance(kind, str) else 'resource'}.resourceType"
            message = "expected a Claim or a Bundle of Claims"
            conversion.reject(None, where, [FieldError(field=where, message=message)])
    return conversion


def _documents(text: str, conversion: Conversion) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path prefix, JSON object) of the one document, or of each NDJSON line."""
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        lines = text.splitlines()
        first = next((line for line in lines if line.strip()), "")
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            raise UnreadableInput(f"neither JSON nor NDJSON: {error}") from None
    else:
        if not isinstance(whole, dict):
            raise UnreadableInput("expected a JSON object: a Claim or a Bundle")
        yield "", whole
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            conversion.reject(
                None, where, [FieldError(field=where, message=f"malformed JSON: {error}")]
            )
            continue
        if isinstance(document, dict):
            yield f"{where}: ", document
        else:
            message = "expected a JSON object: a Claim or a Bundle"
            conversion.reject(None, where, [FieldError(field=where, message=message)])


def _bundle(prefix: str, document: dict[str, Any], intake: _Intake, conversion: Conversion) -> None:
    """Every Claim entry of a Bundle, each refused on its own errors and the Bundle's own."""
    entries = document.get("entry") or []
    shell_errors = _invalid(Bundle, {**document, "entry": []}, f"{prefix}Bundle")
    index = _Bundle()
    claims: list[tuple[str, dict[str, Any]]] = []
    for number, entry in enumerate(entries if isinstance(entries, list) else []):
        path = f"{prefix}Bundle.entry[{number}].resource"
        if not isinstance(entry, dict):
            continue
        index.add(path, entry)
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "Claim":
            claims.append((path, resource))
    for path, resource in claims:
        _claim(path, resource, index, shell_errors, intake, conversion)


def _invalid(model: type[BaseModel], document: dict[str, Any], path: str) -> list[FieldError]:
    """The validation errors of `document` as `model`, each named by its path."""
    try:
        model.model_validate(document)
    except ValidationError as error:
        return [
            FieldError(field=_path(path, item["loc"]), message=item["msg"])
            for item in error.errors(include_url=False, include_input=False)
        ]
    return []


def _path(base: str, loc: tuple[int | str, ...]) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _claim(
    path: str,
    document: dict[str, Any],
    bundle: _Bundle,
    errors: list[FieldError],
    intake: _Intake,
    conversion: Conversion,
) -> None:
    """Add one Claim's events to `conversion`, or refuse it with every error found."""
    claim_id = _raw_claim_id(document)
    try:
        claim = Claim.model_validate(document)
    except ValidationError:
        conversion.reject(claim_id, path, [*errors, *_invalid(Claim, document, path)])
        return
    reader = _ClaimReader(claim, document, path, bundle, list(errors))
    events = reader.events(intake)
    if reader.errors:
        conversion.reject(claim_id, path, reader.errors)
    else:
        conversion.accept(events[0][0].claim_id, events)


def _raw_claim_id(document: dict[str, Any]) -> str | None:
    """Claim.identifier[0].value, else Claim.id, read before validation (to name a bad Claim)."""
    identifiers = document.get("identifier")
    if isinstance(identifiers, list) and identifiers and isinstance(identifiers[0], dict):
        value = identifiers[0].get("value")
        if isinstance(value, str) and value.strip():
            return value.strip()
    value = document.get("id")
    return value if isinstance(value, str) and value else None


@dataclass(slots=True)
class _ClaimReader:
    """Maps one validated Claim to events; what cannot be mapped goes to `errors`, by path."""

    claim: Claim
    document: dict[str, Any]
    path: str
    bundle: _Bundle
    errors: list[FieldError]

    def events(self, intake: _Intake) -> list[tuple[ClaimLineEvent, str]]:
        claim, path, received_at = self.claim, self.path, intake.received_at
        if claim.use != "claim":
            self._error(f"{path}.use", "only a claim (use 'claim') is decided")
        if claim.status == "draft":
            self._error(f"{path}.status", "a draft claim is not decided")
        common: dict[str, Any] = {}
        sources: dict[str, str] = {}
        self._put(common, sources, "patient_control_number", self._claim_id())
        self._put(common, sources, "member_id", self._member(intake.dependents))
        billing = self._npi(claim.provider, f"{path}.provider")
        self._put(common, sources, "billing_provider", billing)
        self._put(common, sources, "original_claim_id", self._original(common))
        content = orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS)
        common["claim_id"] = payer_claim_number(
            common.get("billing_provider", ""),
            common.get("patient_control_number", ""),
            common.get("member_id", ""),
            content,
        )
        sources["claim_id"] = sources.get("patient_control_number", path)
        void = claim.status in VOID_STATUSES
        if void:
            common["claim_frequency"] = "8"
        elif "original_claim_id" in common:
            common["claim_frequency"] = "7"
        sources["claim_frequency"] = f"{path}.status"
        if received_at is not None:
            common["received_at"] = received_at
        else:
            created = claim.created
            common["received_at"] = (
                datetime.combine(created, datetime.min.time(), UTC)
                if isinstance(created, date) and not isinstance(created, datetime)
                else created
            )
            sources["received_at"] = f"{path}.created"
        # A void is one event for the whole claim: items, if any, only repeat the original's.
        lines = [(common, sources, path)] if void else []
        for number, item in enumerate([] if void else claim.item or []):
            fields, item_sources = dict(common), dict(sources)
            self._item(item, f"{path}.item[{number}]", fields, item_sources)
            lines.append((fields, item_sources, f"{path}.item[{number}]"))
        if not lines:
            self._error(f"{path}.item", "a claim that is not a void needs at least one item")
        # What the mapping refused is reported alone: the model would repeat it in its own words.
        return [] if self.errors else self._validated(lines)

    def _validated(
        self, lines: list[tuple[dict[str, Any], dict[str, str], str]]
    ) -> list[tuple[ClaimLineEvent, str]]:
        out: list[tuple[ClaimLineEvent, str]] = []
        for fields, sources, where in lines:
            event = validate_event(fields, sources, where)
            if isinstance(event, list):
                self.errors += event
            else:
                out.append((event, where))
        return out

    def _error(self, where: str, message: str) -> None:
        self.errors.append(FieldError(field=where, message=message))

    @staticmethod
    def _put(
        fields: dict[str, Any], sources: dict[str, str], name: str, found: tuple[Any, str] | None
    ) -> None:
        if found is not None:
            fields[name], sources[name] = found

    def _claim_id(self) -> tuple[str, str] | None:
        if self.claim.identifier and self.claim.identifier[0].value:
            return self.claim.identifier[0].value, f"{self.path}.identifier[0].value"
        if self.claim.id:
            return self.claim.id, f"{self.path}.id"
        self._error(f"{self.path}.identifier", "a claim needs an identifier (or an id)")
        return None

    def _member(self, dependents: DependentIdentity) -> tuple[str, str] | None:
        """The member id: from the focal insurance's Coverage, else Claim.patient.identifier,
        else the Patient's identifier of type MB; a dependent as `dependents` says."""
        found_before = len(self.errors)
        coverage = self._coverage()
        if coverage is not None:
            found = self._coverage_member(*coverage, dependents)
            if found is not None:
                return found
        ref, where = self.claim.patient, f"{self.path}.patient"
        if ref.identifier is not None and ref.identifier.value:
            return ref.identifier.value, f"{where}.identifier.value"
        patient = self._patient()
        if patient is not None:
            target_path, resource = patient
            for i, identifier in enumerate(resource.get("identifier") or []):
                if _is_member(identifier) and identifier.get("value"):
                    return identifier["value"], f"{target_path}.identifier[{i}].value"
        if len(self.errors) == found_before:
            self._error(
                where,
                "no member id: the focal insurance's Coverage (subscriberId, or an identifier "
                "of type MB), patient.identifier, or a Patient identifier of type MB (an MRN "
                "is not a member id)",
            )
        return None

    def _coverage(self) -> tuple[str, dict[str, Any]] | None:
        """The validated Coverage of the focal insurance (else the first), when in the Bundle."""
        insurance = self.claim.insurance or []
        chosen = next((i for i in insurance if i.focal), insurance[0] if insurance else None)
        found = None if chosen is None else self.bundle.find(chosen.coverage.reference)
        if found is None or found[1].get("resourceType") != "Coverage":
            return None
        resource = self._resolved(*found)
        return None if resource is None else (found[0], resource)

    def _patient(self) -> tuple[str, dict[str, Any]] | None:
        """The validated Patient that Claim.patient references, when in the Bundle."""
        found = self.bundle.find(self.claim.patient.reference)
        if found is None or found[1].get("resourceType") != "Patient":
            return None
        resource = self._resolved(*found)
        return None if resource is None else (found[0], resource)

    def _coverage_member(
        self, path: str, coverage: dict[str, Any], dependents: DependentIdentity
    ) -> tuple[str, str] | None:
        """The member id a Coverage gives; None (and an error when needed) when it gives none."""
        subscriber = coverage.get("subscriberId")
        subscriber_at = f"{path}.subscriberId"
        own = next(
            (
                (identifier["value"], f"{path}.identifier[{i}].value")
                for i, identifier in enumerate(coverage.get("identifier") or [])
                if _is_member(identifier) and identifier.get("value")
            ),
            None,
        )
        relationship = coverage.get("relationship") or {}
        codes = {c.get("code") for c in relationship.get("coding") or []}
        dependent = coverage.get("dependent") or (codes and SELF not in codes)
        if not dependent:
            return (subscriber, subscriber_at) if subscriber else own
        if dependents is DependentIdentity.PATIENT_MEMBER_ID:
            if own is None:
                self._error(
                    path,
                    "a dependent identified by its own member id needs a Coverage identifier "
                    "of type MB",
                )
            return own
        if not subscriber:
            self._error(subscriber_at, "a dependent's Coverage needs the subscriberId")
            return None
        if isinstance(coverage.get("dependent"), str):
            return dependent_member_id(subscriber, coverage["dependent"]), f"{path}.dependent"
        return self._patient_member(subscriber, subscriber_at)

    def _patient_member(self, subscriber: str, subscriber_at: str) -> tuple[str, str] | None:
        """subscriber "." digest of the Patient's name and birth date (as X12 2000C gives)."""
        patient = self._patient()
        names = patient[1].get("name") if patient else None
        name = names[0] if isinstance(names, list) and names else {}
        given = name.get("given") or [""]
        birth = str(patient[1].get("birthDate") or "") if patient else ""
        if patient is None or not name.get("family") or len(birth) != len("YYYY-MM-DD"):
            self._error(
                f"{self.path}.patient",
                "a dependent without Coverage.dependent is identified by its Patient's name "
                "(family, given) and birthDate",
            )
            return None
        digest = patient_digest(name["family"], given[0], birth.replace("-", ""))
        return dependent_member_id(subscriber, digest), f"{subscriber_at} with {patient[0]}"

    def _resolved(self, path: str, resource: dict[str, Any]) -> dict[str, Any] | None:
        """A referenced resource once it validates (its errors go to `errors` otherwise)."""
        kind = resource.get("resourceType")
        try:
            model = get_fhir_model_class(kind if isinstance(kind, str) else "")
        except ValueError:
            self._error(f"{path}.resourceType", "not a FHIR resource type")
            return None
        problems = _invalid(model, resource, path)
        self.errors += problems
        return None if problems else resource

    def _original(self, common: dict[str, Any]) -> tuple[str, str] | None:
        """The claim a replacement or void takes back: related with relationship prior or
        replaces; for a cancelled Claim naming none, the claims sent under its own identifier."""
        for number, related in enumerate(self.claim.related or []):
            if not any(_has_code(related.relationship, code) for code in PRIOR_RELATIONSHIPS):
                continue
            where = f"{self.path}.related[{number}].claim"
            ref = related.claim
            if ref is None:
                self._error(where, "a prior claim needs its reference")
                return None
            if ref.identifier is not None and ref.identifier.value:
                return ref.identifier.value, f"{where}.identifier.value"
            found = self.bundle.find(ref.reference)
            if found is not None:
                original = _raw_claim_id(found[1])
                if original is not None:
                    return original, where
            if ref.reference and ref.reference.startswith("Claim/"):
                return ref.reference.removeprefix("Claim/"), f"{where}.reference"
            self._error(where, "names no claim: identifier, a Claim in the Bundle, or Claim/<id>")
            return None
        if self.claim.status in VOID_STATUSES:
            own = common.get("patient_control_number")
            if own is not None:
                return own, f"{self.path}.identifier[0].value"
            self._error(
                f"{self.path}.related",
                "a cancelled claim names the claim it voids (related prior), or carries its "
                "identifier",
            )
        return None

    def _item(
        self, item: ClaimItem, where: str, fields: dict[str, Any], sources: dict[str, str]
    ) -> None:
        fields["line_number"], sources["line_number"] = item.sequence, f"{where}.sequence"
        coding = item.productOrService.coding or []
        chosen = next(
            (i for i, c in enumerate(coding) if c.system in PROCEDURE_SYSTEMS),
            0 if coding else None,
        )
        if chosen is None or not coding[chosen].code:
            self._error(f"{where}.productOrService", "no procedure code (coding.code)")
        else:
            fields["procedure_code"] = coding[chosen].code
            sources["procedure_code"] = f"{where}.productOrService.coding[{chosen}].code"
        modifiers = []
        for number, modifier in enumerate(item.modifier or []):
            if modifier.coding and modifier.coding[0].code:
                modifiers.append(modifier.coding[0].code)
            else:
                self._error(f"{where}.modifier[{number}]", "no modifier code (coding.code)")
        fields["modifiers"], sources["modifiers"] = modifiers, f"{where}.modifier"
        if item.quantity is not None and item.quantity.value is not None:
            fields["units"] = _whole(item.quantity.value)
            sources["units"] = f"{where}.quantity.value"
        self._put(fields, sources, "date_of_service", self._service_date(item, where))
        self._put(fields, sources, "provider_npi", self._rendering_npi(item, where))

    def _service_date(self, item: ClaimItem, where: str) -> tuple[date | str, str] | None:
        if item.servicedDate is not None:
            return _day(item.servicedDate), f"{where}.servicedDate"
        if item.servicedPeriod is not None and item.servicedPeriod.start is not None:
            return _day(item.servicedPeriod.start), f"{where}.servicedPeriod.start"
        period = self.claim.billablePeriod
        if period is not None and period.start is not None:
            return _day(period.start), f"{self.path}.billablePeriod.start"
        self._error(where, "no date of service: servicedDate, servicedPeriod or billablePeriod")
        return None

    def _rendering_npi(self, item: ClaimItem, where: str) -> tuple[str, str] | None:
        """NPI of the careTeam member the item names (rendering first), else the claim's
        rendering careTeam member, else Claim.provider."""
        team = {member.sequence: (i, member) for i, member in enumerate(self.claim.careTeam or [])}
        named = []
        for sequence in item.careTeamSequence or []:
            if sequence not in team:
                self._error(f"{where}.careTeamSequence", f"no careTeam member {sequence}")
                return None
            named.append(team[sequence])
        candidates = named or list(team.values())
        member = next((m for m in candidates if _renders(m[1])), named[0] if named else None)
        if member is not None:
            number, chosen = member
            return self._npi(chosen.provider, f"{self.path}.careTeam[{number}].provider")
        return self._npi(self.claim.provider, f"{self.path}.provider")

    def _npi(self, ref: Reference, where: str) -> tuple[str, str] | None:
        identifier = ref.identifier
        if identifier is not None and identifier.value and identifier.system in (NPI_SYSTEM, None):
            return identifier.value, f"{where}.identifier.value"
        found = self.bundle.find(ref.reference)
        if found is not None:
            target_path, resource = found
            provider = self._resolved(target_path, resource)
            if provider is None:
                return None
            # A validated resource: each identifier is an object.
            for i, candidate in enumerate(provider.get("identifier") or []):
                value = candidate.get("value")
                if candidate.get("system") == NPI_SYSTEM and isinstance(value, str):
                    return value, f"{target_path}.identifier[{i}].value"
        self._error(where, f"no NPI: an identifier with system {NPI_SYSTEM}")
        return None


def _has_code(concept: CodeableConcept | None, code: str) -> bool:
    return concept is not None and any(c.code == code for c in concept.coding or [])


def _renders(member: ClaimCareTeam) -> bool:
    return any(_has_code(member.role, role) for role in RENDERING_ROLES)


def _is_member(identifier: Any) -> bool:
    kind = identifier.get("type") if isinstance(identifier, dict) else None
    codings = kind.get("coding") if isinstance(kind, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("code") == MEMBER_NUMBER for c in codings
    )


def _day(value: date | str) -> date | str:
    """A FHIR date or dateTime as the day it names (a partial date stays text, and is refused)."""
    return value.date() if isinstance(value, datetime) else value


def _whole(value: Decimal) -> int | str:
    """A quantity as a whole number of units; its text (refused by the model) otherwise."""
    return int(value) if value == value.to_integral_value() else str(value)
