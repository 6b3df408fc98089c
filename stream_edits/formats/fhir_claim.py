"""FHIR R4 Claim in (one resource, a Bundle, or NDJSON of either), claim-line events out: one
event per `item`.

fhir.resources validates every resource against the FHIR model (its R4B package: Claim and the
types it uses are the same in R4 and R4B); a resource that fails is refused naming the path of
each failing element, e.g. `Bundle.entry[2].resource.item[0].productOrService`. Each Claim of a
Bundle is validated alone, so one bad Claim does not refuse the others. References to a Patient,
Practitioner, Organization or prior Claim are followed within the same Bundle.
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

from stream_edits.formats.result import Conversion, UnreadableInput, validate_event
from stream_edits.models import ClaimLineEvent, FieldError

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
# CPT, and HCPCS Level II by its OID and by its CMS URL.
PROCEDURE_SYSTEMS = (
    "http://www.ama-assn.org/go/cpt",
    "urn:oid:2.16.840.1.113883.6.285",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
)
MEMBER_NUMBER = "MB"  # identifier type (v2-0203) of a payer's member number
PRIOR = "prior"  # related.relationship of the claim a replacement or void takes back
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


def events_from_fhir(text: str, received_at: datetime | None = None) -> Conversion:
    """Claim-line events of every Claim; each bad Claim refused naming the paths that failed.

    received_at is the Claim's `created` (a date alone: midnight UTC) unless given. Raises
    UnreadableInput when the text is neither JSON nor NDJSON.
    """
    conversion = Conversion()
    for prefix, document in _documents(text, conversion):
        kind = document.get("resourceType")
        if kind == "Bundle":
            _bundle(prefix, document, received_at, conversion)
        elif kind == "Claim":
            _claim(f"{prefix}Claim", document, _Bundle(), [], received_at, conversion)
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


def _bundle(
    prefix: str, document: dict[str, Any], received_at: datetime | None, conversion: Conversion
) -> None:
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
        _claim(path, resource, index, shell_errors, received_at, conversion)


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
    received_at: datetime | None,
    conversion: Conversion,
) -> None:
    """Add one Claim's events to `conversion`, or refuse it with every error found."""
    claim_id = _raw_claim_id(document)
    try:
        claim = Claim.model_validate(document)
    except ValidationError:
        conversion.reject(claim_id, path, [*errors, *_invalid(Claim, document, path)])
        return
    reader = _ClaimReader(claim, path, bundle, list(errors))
    events = reader.events(received_at)
    if reader.errors:
        conversion.reject(claim_id, path, reader.errors)
    else:
        assert claim_id is not None  # the events carry it, so the model found it
        conversion.accept(claim_id, events)


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
    path: str
    bundle: _Bundle
    errors: list[FieldError]

    def events(self, received_at: datetime | None) -> list[tuple[ClaimLineEvent, str]]:
        claim, path = self.claim, self.path
        if claim.use != "claim":
            self._error(f"{path}.use", "only a claim (use 'claim') is decided")
        if claim.status == "draft":
            self._error(f"{path}.status", "a draft claim is not decided")
        common: dict[str, Any] = {}
        sources: dict[str, str] = {}
        self._put(common, sources, "claim_id", self._claim_id())
        self._put(common, sources, "member_id", self._member())
        self._put(common, sources, "original_claim_id", self._original())
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

    def _member(self) -> tuple[str, str] | None:
        """Claim.patient's identifier, else the member number of the Patient it references."""
        ref, where = self.claim.patient, f"{self.path}.patient"
        if ref.identifier is not None and ref.identifier.value:
            return ref.identifier.value, f"{where}.identifier.value"
        found = self.bundle.find(ref.reference)
        if found is not None and found[1].get("resourceType") == "Patient":
            target_path, resource = found
            patient = self._resolved(target_path, resource)
            identifiers = patient.get("identifier") if patient else None
            if isinstance(identifiers, list):
                ranked = sorted(
                    range(len(identifiers)), key=lambda i: not _is_member(identifiers[i])
                )
                for i in ranked:
                    value = identifiers[i].get("value")
                    if isinstance(value, str) and value:
                        return value, f"{target_path}.identifier[{i}].value"
            if patient is None:
                return None
        self._error(where, "no member id: patient.identifier, or a Patient in the Bundle")
        return None

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

    def _original(self) -> tuple[str, str] | None:
        """The claim a replacement or void takes back: related with relationship 'prior'."""
        for number, related in enumerate(self.claim.related or []):
            if not _has_code(related.relationship, PRIOR):
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
            self._error(
                f"{self.path}.related", "a cancelled claim names the claim it voids (prior)"
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
