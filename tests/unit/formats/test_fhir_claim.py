"""FHIR R4 Claim to claim-line events: the mapping table, and bad resources refused by path."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from stream_edits.formats.fhir_claim import NPI_SYSTEM, events_from_fhir
from stream_edits.formats.identity import patient_digest
from stream_edits.formats.result import Conversion, UnreadableInput
from stream_edits.models import ClaimFrequency, Rejection
from stream_edits.settings import DependentIdentity
from tests.factories import NPI_A, NPI_B, npi

CPT = "http://www.ama-assn.org/go/cpt"
BILLING_NPI = npi(9)


def item(sequence: int = 1, code: str = "64461", **fields: Any) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "productOrService": {"coding": [{"system": CPT, "code": code}]},
        "servicedDate": "2025-03-10",
        **fields,
    }


def role(code: str) -> dict[str, Any]:
    return {"coding": [{"code": code}]}


def claim(claim_id: str = "C1", *items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid R4 Claim: member M1, rendering NPI_A in its care team, one 64461 by default."""
    return {
        "resourceType": "Claim",
        "identifier": [{"value": claim_id}],
        "status": "active",
        "type": {"coding": [{"code": "professional"}]},
        "use": "claim",
        "patient": {"identifier": {"value": "M1"}},
        "created": "2025-03-11T08:02:11-05:00",
        "provider": {"identifier": {"system": NPI_SYSTEM, "value": BILLING_NPI}},
        "priority": {"coding": [{"code": "normal"}]},
        "careTeam": [
            {
                "sequence": 1,
                "provider": {"identifier": {"system": NPI_SYSTEM, "value": NPI_A}},
                "role": role("primary"),
            }
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "plan"}}],
        "item": list(items) or [item()],
        **fields,
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [
        {"fullUrl": f"urn:uuid:{n}", "resource": resource} for n, resource in enumerate(resources)
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def convert(document: dict[str, Any] | str) -> Conversion:
    return events_from_fhir(document if isinstance(document, str) else json.dumps(document))


def refused(conversion: Conversion) -> dict[str | None, Rejection]:
    return {r.claim_id: r for r in conversion.rejections}


def prior(**reference: Any) -> list[dict[str, Any]]:
    return [{"claim": reference, "relationship": role("prior")}]


def test_each_item_becomes_one_event_with_the_fields_of_the_mapping_table() -> None:
    modified = item(2, "64462", modifier=[role("RT"), role("59")], quantity={"value": 1})

    conversion = convert(claim("C1", item(), modified))

    assert conversion.rejections == []
    first, second = conversion.events
    assert first.model_dump(exclude_unset=True) == {
        "claim_id": first.claim_id,
        "patient_control_number": "C1",
        "billing_provider": BILLING_NPI,
        "line_number": 1,
        "member_id": "M1",
        "provider_npi": NPI_A,
        "date_of_service": date(2025, 3, 10),
        "procedure_code": "64461",
        "modifiers": [],
        "received_at": datetime.fromisoformat("2025-03-11T08:02:11-05:00"),
    }
    assert (second.line_number, second.modifiers, second.units) == (2, ["RT", "59"], 1)
    assert first.claim_frequency is ClaimFrequency.ORIGINAL
    assert [o.location for o in conversion.origins] == ["Claim.item[0]", "Claim.item[1]"]


def test_in_a_bundle_the_patient_and_providers_are_followed_to_their_entries() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"value": "SSN-NOT-A-MEMBER"},
            {"type": {"coding": [{"code": "MB"}]}, "value": "M77"},
        ],
    }
    practitioner = {
        "resourceType": "Practitioner",
        "id": "dr",
        "identifier": [{"system": NPI_SYSTEM, "value": NPI_B}],
    }
    team = [{"sequence": 1, "provider": {"reference": "Practitioner/dr"}, "role": role("primary")}]
    resource = claim("C1", patient={"reference": "Patient/p1"}, careTeam=team)

    conversion = convert(bundle(patient, practitioner, resource))

    [event] = conversion.events
    assert (event.member_id, event.provider_npi) == ("M77", NPI_B)
    assert conversion.origins[0].location == "Bundle.entry[2].resource.item[0]"


def test_the_rendering_npi_is_the_items_care_team_member_else_the_claims_else_the_provider() -> (
    None
):
    team = [
        {
            "sequence": 1,
            "provider": {"identifier": {"system": NPI_SYSTEM, "value": NPI_A}},
            "role": role("supervisor"),
        },
        {
            "sequence": 2,
            "provider": {"identifier": {"system": NPI_SYSTEM, "value": NPI_B}},
            "role": role("rendering"),
        },
    ]
    items = [item(1, careTeamSequence=[1]), item(2, careTeamSequence=[1, 2]), item(3)]
    with_team = claim("C1", *items, careTeam=team)
    without_team = claim("C2")
    del without_team["careTeam"]

    conversion = convert(bundle(with_team, without_team))

    assert [e.provider_npi for e in conversion.events] == [NPI_A, NPI_B, NPI_B, BILLING_NPI]


def test_the_date_of_service_is_served_date_else_the_served_period_else_the_billable_period() -> (
    None
):
    undated = item(3)
    del undated["servicedDate"]
    items = [item(1), item(2, servicedPeriod={"start": "2025-03-09T10:00:00Z"}), undated]
    items[1].pop("servicedDate")

    conversion = convert(claim("C1", *items, billablePeriod={"start": "2025-03-08"}))

    assert [e.date_of_service for e in conversion.events] == [
        date(2025, 3, 10),
        date(2025, 3, 9),
        date(2025, 3, 8),
    ]


@pytest.mark.parametrize(
    "reference",
    [{"identifier": {"value": "C0"}}, {"reference": "Claim/C0"}, {"reference": "urn:uuid:0"}],
    ids=["identifier", "claim-id", "bundle-entry"],
)
def test_a_replacement_names_its_original_through_related_prior(reference: dict[str, Any]) -> None:
    original = claim("C0")
    replacement = claim("C1", related=prior(**reference))

    conversion = convert(bundle(original, replacement))

    event = conversion.events[-1]
    assert (event.claim_frequency, event.original_claim_id) == (ClaimFrequency.REPLACEMENT, "C0")


def test_a_cancelled_claim_is_one_void_event_for_the_claim_it_names() -> None:
    void = claim("C9", status="cancelled", related=prior(identifier={"value": "C1"}))
    del void["item"]

    conversion = convert(void)

    [event] = conversion.events
    assert event.model_dump(exclude_unset=True) == {
        "claim_id": event.claim_id,
        "patient_control_number": "C9",
        "billing_provider": BILLING_NPI,
        "member_id": "M1",
        "claim_frequency": ClaimFrequency.VOID,
        "original_claim_id": "C1",
        "received_at": datetime.fromisoformat("2025-03-11T08:02:11-05:00"),
    }


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"status": "draft"}, "Claim.status", "draft"),
        ({"use": "preauthorization"}, "Claim.use", "only a claim"),
    ],
    ids=["draft", "preauthorization"],
)
def test_a_claim_that_is_not_one_to_decide_is_refused_naming_the_element(
    fields: dict[str, Any], path: str, fragment: str
) -> None:
    conversion = convert(claim("C1", **fields))

    [error] = refused(conversion)["C1"].errors
    assert (error.field, fragment in error.message) == (path, True)


def test_a_resource_missing_a_required_element_is_refused_naming_its_path_and_others_go_on() -> (
    None
):
    no_product = item(2)
    del no_product["productOrService"]
    bad = claim("C2", item(1), no_product)
    del bad["patient"]

    conversion = convert(bundle(claim("C1"), bad, claim("C3")))

    assert [e.patient_control_number for e in conversion.events] == ["C1", "C3"]
    assert {e.field for e in refused(conversion)["C2"].errors} == {
        "Bundle.entry[1].resource.item[1].productOrService",
        "Bundle.entry[1].resource.patient",
    }


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        (
            {
                "careTeam": [
                    {
                        "sequence": 1,
                        "provider": {"identifier": {"value": "1234567890"}},
                        "role": role("primary"),
                    }
                ]
            },
            "Claim.careTeam[0].provider.identifier.value",
        ),
        ({"item": [item(quantity={"value": 1.5})]}, "Claim.item[0].quantity.value"),
        ({"item": [item(code="6446")]}, "Claim.item[0].productOrService.coding[0].code"),
        ({"created": "2025-03"}, "Claim.created"),
    ],
    ids=["bad-npi", "fractional-quantity", "short-procedure-code", "partial-created"],
)
def test_a_value_the_event_refuses_is_named_by_the_path_it_came_from(
    changes: dict[str, Any], path: str
) -> None:
    conversion = convert(claim("C1", **changes))

    assert conversion.events == []
    assert [e.field for e in refused(conversion)["C1"].errors] == [path]


def test_ndjson_of_resources_refuses_a_malformed_line_by_number_and_reads_the_rest() -> None:
    text = "\n".join([json.dumps(claim("C1")), "{not json", "", json.dumps(bundle(claim("C2")))])

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C1", "C2"]
    assert [o.location for o in conversion.origins] == [
        "line 1: Claim.item[0]",
        "line 4: Bundle.entry[0].resource.item[0]",
    ]
    [rejection] = conversion.rejections
    assert rejection.reason.startswith("claim at line 2 refused: line 2: malformed JSON")


def test_a_resource_of_another_type_is_refused_naming_its_type() -> None:
    conversion = convert({"resourceType": "Patient", "id": "p1"})

    assert [e.field for e in conversion.rejections[0].errors] == ["Patient.resourceType"]


def test_text_that_is_neither_json_nor_ndjson_is_unreadable() -> None:
    with pytest.raises(UnreadableInput):
        convert("ISA*00*...")


def test_created_as_a_date_is_midnight_utc_and_received_at_given_replaces_it() -> None:
    resource = json.dumps(claim("C1", created="2025-03-11"))
    given = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)

    assert [e.received_at for e in events_from_fhir(resource).events] == [
        datetime(2025, 3, 11, tzinfo=UTC)
    ]
    assert [e.received_at for e in events_from_fhir(resource, given).events] == [given]


MRN = {"type": {"coding": [{"code": "MR"}]}, "value": "MRN-0042"}


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "identifier": [MRN], **fields}


def coverage(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": "cov1",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"display": "payer"}],
        **fields,
    }


def insured(claim_id: str = "C1", **fields: Any) -> dict[str, Any]:
    """A Claim whose patient is Patient/p1 and whose focal insurance is Coverage/cov1."""
    insurance = [
        {"sequence": 1, "focal": False, "coverage": {"display": "secondary plan"}},
        {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov1"}},
    ]
    return claim(claim_id, patient={"reference": "Patient/p1"}, insurance=insurance, **fields)


@pytest.mark.parametrize(
    ("member_number", "path"),
    [
        ({"subscriberId": "M55"}, "subscriberId"),
        ({"identifier": [{"type": {"coding": [{"code": "MB"}]}, "value": "M55"}]}, "identifier"),
    ],
    ids=["subscriberId", "identifier-MB"],
)
def test_the_member_id_comes_from_the_focal_coverage_not_the_patients_mrn(
    member_number: dict[str, Any], path: str
) -> None:
    conversion = convert(bundle(patient(), coverage(**member_number), insured()))

    [event] = conversion.events
    assert event.member_id == "M55"


def test_a_patient_with_only_an_mrn_and_no_coverage_is_refused_not_decided_under_the_mrn() -> None:
    conversion = convert(bundle(patient(), claim("C1", patient={"reference": "Patient/p1"})))

    assert conversion.events == []
    [error] = refused(conversion)["C1"].errors
    assert error.field == "Bundle.entry[1].resource.patient" and "MRN" in error.message


def test_a_dependent_is_the_subscriber_and_its_dependent_number_or_name_and_birth_date() -> None:
    child = {"coding": [{"code": "child"}]}
    person = patient(name=[{"family": "Doe", "given": ["Jim"]}], birthDate="2010-01-01")

    numbered = convert(
        bundle(person, coverage(subscriberId="M1", relationship=child, dependent="02"), insured())
    )
    named = convert(bundle(person, coverage(subscriberId="M1", relationship=child), insured()))

    assert [e.member_id for e in numbered.events] == ["M1.02"]
    # The same person as X12 2000C (NM1*QC*1*DOE*JIM, DMG*D8*20100101) gets the same member id.
    assert [e.member_id for e in named.events] == ["M1." + patient_digest("DOE", "JIM", "20100101")]


def test_with_dependents_identified_by_their_own_id_the_coverage_member_number_is_used() -> None:
    child = {"coding": [{"code": "child"}]}
    own = {"type": {"coding": [{"code": "MB"}]}, "value": "M1-02"}
    document = json.dumps(
        bundle(
            patient(),
            coverage(subscriberId="M1", relationship=child, identifier=[own]),
            insured(),
        )
    )
    without = json.dumps(
        bundle(patient(), coverage(subscriberId="M1", relationship=child), insured())
    )

    conversion = events_from_fhir(document, dependents=DependentIdentity.PATIENT_MEMBER_ID)
    refusal = events_from_fhir(without, dependents=DependentIdentity.PATIENT_MEMBER_ID)

    assert [e.member_id for e in conversion.events] == ["M1-02"]
    [error] = refused(refusal)["C1"].errors
    assert error.field == "Bundle.entry[1].resource" and "type MB" in error.message


def test_a_cancelled_resend_under_the_same_identifier_voids_that_identifier() -> None:
    original = claim("C1")
    cancelled = claim("C1", status="cancelled")

    conversion = convert(bundle(original, cancelled))

    first, void = conversion.events
    assert void.claim_frequency is ClaimFrequency.VOID
    assert (void.patient_control_number, void.original_claim_id) == ("C1", "C1")
    assert void.claim_id != first.claim_id


def test_related_replaces_names_the_original_and_the_same_resource_gets_the_same_number() -> None:
    related = [{"claim": {"identifier": {"value": "A1B2"}}, "relationship": role("replaces")}]
    document = bundle(claim("C1", related=related))

    [event] = convert(document).events
    [again] = convert(document).events

    assert (event.claim_frequency, event.original_claim_id) == (ClaimFrequency.REPLACEMENT, "A1B2")
    assert event.claim_id == again.claim_id and len(event.claim_id) == 20
