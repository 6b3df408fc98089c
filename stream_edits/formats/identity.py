"""How a payer identifies claims and members at intake, shared by the X12 and FHIR converters.

The payer claim control number (PCN) of a claim is a digest of its billing provider, its patient
control number (CLM01 / Claim.identifier), its member and its content: the same file read twice
gives the same numbers (a re-send is an exact redelivery), and two billing providers never share
one. A dependent without a member id of its own is identified by `DependentIdentity`.
"""

from __future__ import annotations

import hashlib

PCN_BYTES = 10  # 20 hex digits: collisions are out of reach for any payer's volume
DEPENDENT_BYTES = 6


def payer_claim_number(
    billing_provider: str, patient_control_number: str, member_id: str, content: bytes
) -> str:
    """The claim's payer claim control number: 20 upper-case hex digits."""
    digest = hashlib.blake2b(digest_size=PCN_BYTES)
    for part in (billing_provider, patient_control_number, member_id):
        digest.update(part.encode() + b"\x00")
    digest.update(content)
    return digest.hexdigest().upper()


def dependent_member_id(subscriber_id: str, dependent: str) -> str:
    """The member id of a dependent under SUBSCRIBER_AND_PATIENT: subscriber id "." dependent."""
    return f"{subscriber_id}.{dependent}"


def patient_digest(last_name: str, first_name: str, birth_date: str) -> str:
    """A stable digest of a patient's name and birth date (YYYYMMDD), with no way back to them:
    names compared upper-case without spaces, so "de la Cruz" and "DE LA CRUZ" agree."""
    text = "\x00".join(
        "".join(part.upper().split()) for part in (last_name, first_name, birth_date)
    )
    return hashlib.blake2b(text.encode(), digest_size=DEPENDENT_BYTES).hexdigest()
