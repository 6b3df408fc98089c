"""837P to claim-line events: the mapping table, and bad interchanges refused claim by claim."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stream_edits.formats.identity import patient_digest
from stream_edits.formats.result import Conversion, UnreadableInput
from stream_edits.formats.x12_837p import events_from_837p
from stream_edits.models import ClaimFrequency, Rejection
from stream_edits.settings import DependentIdentity
from tests.factories import NPI_A, NPI_B, npi
from tests.unit.formats.x12_builder import (
    BILLING_NPI,
    claim,
    interchange,
    service,
    transaction,
)


def convert(text: str) -> Conversion:
    return events_from_837p(text)


def refused(conversion: Conversion) -> dict[str | None, Rejection]:
    return {r.claim_id: r for r in conversion.rejections}


def position_of(text: str, prefix: str, nth: int = 1) -> int:
    """The position (ISA = 1) of the nth segment starting with `prefix`."""
    found = [i for i, s in enumerate(text.split("~\n"), start=1) if s.startswith(prefix)]
    return found[nth - 1]


def test_each_service_line_becomes_one_event_with_the_fields_of_the_mapping_table() -> None:
    text = interchange(
        transaction(
            claim("C1", service(1, "64461", ["RT"]), service(2, "64462", ["RT", "59"], units="1")),
            member="M42",
            bht="20250311*130211",
        )
    )

    conversion = convert(text)

    assert conversion.rejections == []
    first, second = conversion.events
    assert first.model_dump(exclude_unset=True) == {
        "claim_id": first.claim_id,
        "patient_control_number": "C1",
        "billing_provider": BILLING_NPI,
        "line_number": 1,
        "member_id": "M42",
        "provider_npi": NPI_A,
        "date_of_service": date(2025, 3, 10),
        "procedure_code": "64461",
        "modifiers": ["RT"],
        "units": 1,
        "claim_frequency": ClaimFrequency.ORIGINAL,
        "received_at": datetime(2025, 3, 11, 13, 2, 11, tzinfo=UTC),
    }
    assert (second.line_number, second.procedure_code, second.modifiers) == (
        2,
        "64462",
        ["RT", "59"],
    )
    assert [o.location for o in conversion.origins] == [
        f"LX segment {position_of(text, 'LX*1')}",
        f"LX segment {position_of(text, 'LX*2')}",
    ]


def test_rendering_npi_is_the_lines_2420a_else_the_claims_2310b_else_the_billing_provider() -> None:
    line_level = claim("C1", service(1, rendering=NPI_B), service(2), rendering=NPI_A)
    no_rendering = claim("C2", rendering=None)
    conversion = convert(interchange(transaction(line_level, no_rendering)))

    assert [e.provider_npi for e in conversion.events] == [NPI_B, NPI_A, BILLING_NPI]


def test_date_of_service_is_the_lines_dtp_472_which_every_service_line_needs() -> None:
    dated = claim("C1", service(1, day="20250401"), service(2, day="20250402"))
    undated = claim("C2", service(1, day=None))
    text = interchange(transaction(dated, undated))

    conversion = convert(text)

    assert [e.date_of_service for e in conversion.events] == [date(2025, 4, 1), date(2025, 4, 2)]
    where = f"LX segment {position_of(text, 'LX*1', nth=2)}"
    assert f"{where}: Value error, claim_frequency 1 needs date_of_service" in (
        refused(conversion)["C2"].reason
    )


def test_a_replacement_names_its_original_from_ref_f8() -> None:
    conversion = convert(interchange(transaction(claim("C2", frequency="7", original="C1"))))

    [event] = conversion.events
    assert (event.claim_frequency, event.original_claim_id) == (ClaimFrequency.REPLACEMENT, "C1")


def test_a_void_is_one_event_for_the_whole_claim_whatever_lines_it_repeats() -> None:
    void = claim("C3", service(1), service(2, "64462"), frequency="8", original="C1")
    conversion = convert(interchange(transaction(void, member="M7")))

    [event] = conversion.events
    assert event.model_dump(exclude_unset=True) == {
        "claim_id": event.claim_id,
        "patient_control_number": "C3",
        "billing_provider": BILLING_NPI,
        "member_id": "M7",
        "claim_frequency": ClaimFrequency.VOID,
        "original_claim_id": "C1",
        "received_at": datetime(2025, 3, 11, 13, 2, 11, tzinfo=UTC),
    }


def test_received_at_given_replaces_the_bht_time() -> None:
    given = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    conversion = events_from_837p(interchange(), received_at=given)

    assert [e.received_at for e in conversion.events] == [given]


def test_claims_of_several_transaction_sets_come_out_in_file_order_with_their_bht_time() -> None:
    text = interchange(
        transaction(claim("C1"), bht="20250311*0900"),
        transaction(claim("C2"), claim("C3"), control="0002", bht="20250312*101500"),
    )

    conversion = convert(text)

    assert [(e.patient_control_number, e.received_at.isoformat()) for e in conversion.events] == [
        ("C1", "2025-03-11T09:00:00+00:00"),
        ("C2", "2025-03-12T10:15:00+00:00"),
        ("C3", "2025-03-12T10:15:00+00:00"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not x12 at all", id="no-interchange"),
        pytest.param(interchange().replace("*^*00501*", "*00501*", 1), id="isa-15-elements"),
        pytest.param(interchange().split("\n", 1)[1], id="no-isa"),
    ],
)
def test_a_file_without_a_readable_interchange_is_unreadable(text: str) -> None:
    with pytest.raises(UnreadableInput):
        convert(text)


def test_an_iea_that_disagrees_with_its_isa_refuses_every_claim_naming_the_iea() -> None:
    text = interchange(transaction(claim("C1"), claim("C2")), trailer_control="000000009")

    conversion = convert(text)

    assert conversion.events == []
    assert set(refused(conversion)) == {"C1", "C2"}
    where = f"IEA segment {position_of(text, 'IEA')}"
    assert all(where in r.reason for r in conversion.rejections)


def test_a_wrong_se_count_refuses_the_claims_of_that_transaction_set_only() -> None:
    text = interchange(
        transaction(claim("C1")),
        transaction(claim("C2"), control="0002", count_delta=2),
        transaction(claim("C3"), control="0003"),
    )

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C1", "C3"]
    rejection = refused(conversion)["C2"]
    assert f"SE segment {position_of(text, 'SE*', nth=2)}" in rejection.reason
    assert "count" in rejection.reason


def test_a_claim_without_clm01_is_refused_by_its_position_and_the_others_go_on() -> None:
    text = interchange(transaction(claim("C1"), claim(""), claim("C3")))

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C1", "C3"]
    [rejection] = conversion.rejections
    at = position_of(text, "CLM*", nth=2)
    assert rejection.claim_id is None
    assert rejection.reason.startswith(f"claim at CLM segment {at} refused: CLM01 in CLM segment")


def test_a_service_line_without_sv1_refuses_its_claim() -> None:
    no_sv1 = claim("C2", service(1), ["LX*2", "DTP*472*D8*20250310"])
    text = interchange(transaction(claim("C1"), no_sv1))

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C1"]
    assert "SV1" in refused(conversion)["C2"].reason


def test_a_bad_npi_refuses_its_claim_naming_the_nm1_it_came_from() -> None:
    bad = NPI_A[:-1] + str((int(NPI_A[-1]) + 1) % 10)
    text = interchange(transaction(claim("C1", rendering=bad), claim("C2", rendering=npi(3))))

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C2"]
    [error] = refused(conversion)["C1"].errors
    assert error.field == f"NM109 in NM1 segment {position_of(text, 'NM1*82')}"
    assert "Luhn" in error.message


@pytest.mark.parametrize(
    ("line", "named"),
    [
        (service(1, "6446"), "SV101-2"),
        (service(1, units="1.5"), "SV104"),
        (service(1, basis="MJ"), "SV103"),
    ],
    ids=["short-procedure-code", "fractional-units", "units-in-minutes"],
)
def test_a_bad_service_line_refuses_its_claim_naming_the_element(
    line: list[str], named: str
) -> None:
    text = interchange(transaction(claim("C1", line), claim("C2")))

    conversion = convert(text)

    assert [e.patient_control_number for e in conversion.events] == ["C2"]
    assert f"{named} in SV1 segment {position_of(text, 'SV1')}" in refused(conversion)["C1"].reason


def test_a_dependent_is_the_subscriber_id_and_a_digest_of_name_and_birth_date() -> None:
    text = interchange(transaction(claim("C1"), member="M1", patient=True))
    other = interchange(transaction(claim("C1"), member="M1"))

    [dependent] = convert(text).events
    [subscriber] = convert(other).events

    assert dependent.member_id == "M1." + patient_digest("DOE", "JIM", "20100101")
    assert "JIM" not in dependent.member_id and "2010" not in dependent.member_id
    assert subscriber.member_id == "M1" and dependent.claim_id != subscriber.claim_id


def test_with_dependents_identified_by_their_own_id_a_2000c_patient_is_refused_naming_it() -> None:
    text = interchange(transaction(claim("C1"), patient=True))

    conversion = events_from_837p(text, dependents=DependentIdentity.PATIENT_MEMBER_ID)

    assert conversion.events == []
    reason = refused(conversion)["C1"].reason
    assert f"HL segment {position_of(text, 'HL*3')}" in reason and "2000C" in reason


def test_the_claim_id_is_a_payer_claim_control_number_the_same_for_the_same_file() -> None:
    text = interchange(transaction(claim("C1", service(1), service(2, "64462"))))

    first, second = convert(text).events
    again = convert(text).events

    assert first.claim_id == second.claim_id == again[0].claim_id
    assert len(first.claim_id) == 20 and first.claim_id != "C1"
    assert first.patient_control_number == "C1" and first.billing_provider == BILLING_NPI


def test_two_billing_providers_with_the_same_clm01_get_two_claim_numbers() -> None:
    text = interchange(transaction(claim("C1")))
    other = text.replace(f"XX*{BILLING_NPI}", f"XX*{NPI_B}")

    [mine], [theirs] = convert(text).events, convert(other).events

    assert (mine.patient_control_number, theirs.patient_control_number) == ("C1", "C1")
    assert (mine.billing_provider, theirs.billing_provider) == (BILLING_NPI, NPI_B)
    assert mine.claim_id != theirs.claim_id


@pytest.mark.parametrize("frequency", ["7", "8"])
def test_a_correction_without_ref_f8_is_refused_naming_clm05(frequency: str) -> None:
    text = interchange(transaction(claim("C2", frequency=frequency)))

    conversion = convert(text)

    assert conversion.events == []
    [error] = refused(conversion)["C2"].errors
    assert error.field == f"CLM05-3 in CLM segment {position_of(text, 'CLM')}"
    assert "REF*F8" in error.message


def test_a_functional_group_of_another_implementation_is_refused_naming_gs08() -> None:
    text = interchange(version="005010X223A2")

    conversion = convert(text)

    assert conversion.events == []
    assert "GS08 in GS segment 2: not an 837P 005010X222A1" in refused(conversion)["C1"].reason
