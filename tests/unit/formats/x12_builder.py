"""Builders of 837P (005010X222A1) text for tests: an interchange of transaction sets of claims."""

from __future__ import annotations

from collections.abc import Sequence

from tests.factories import NPI_A, npi

BILLING_NPI = npi(9)


def service(
    number: int = 1,
    code: str = "64461",
    modifiers: Sequence[str] = (),
    units: str = "1",
    basis: str = "UN",
    day: str | None = "20250310",
    rendering: str | None = None,
) -> list[str]:
    """A 2400 loop: LX, SV1, DTP*472 and, with `rendering`, a 2420A NM1*82."""
    composite = ":".join(["HC", code, *modifiers])
    segments = [f"LX*{number}", f"SV1*{composite}*100*{basis}*{units}***1"]
    if day is not None:
        segments.append(f"DTP*472*D8*{day}")
    if rendering is not None:
        segments.append(f"NM1*82*1*LINE*DOC****XX*{rendering}")
    return segments


def claim(
    claim_id: str = "C1",
    *lines: list[str],
    frequency: str = "1",
    original: str | None = None,
    rendering: str | None = NPI_A,
) -> list[str]:
    """A 2300 loop with its 2310B rendering provider and service lines (one 64461 by default)."""
    segments = [f"CLM*{claim_id}*100***11:B:{frequency}*Y*A*Y*Y"]
    if original is not None:
        segments.append(f"REF*F8*{original}")
    segments.append("HI*ABK:G8918")
    if rendering is not None:
        segments.append(f"NM1*82*1*CLAIM*DOC****XX*{rendering}")
    for loop in lines or (service(),):
        segments += loop
    return segments


def transaction(
    *claims: list[str],
    control: str = "0001",
    member: str = "M1",
    bht: str = "20250311*130211",
    count_delta: int = 0,
    patient: bool = False,
) -> list[str]:
    """An ST/SE transaction set: billing provider, subscriber (or dependent patient), claims."""
    segments = [
        f"ST*837*{control}*005010X222A1",
        f"BHT*0019*00*{control}*{bht}*CH",
        "NM1*41*2*CLEARINGHOUSE*****46*CH0001",
        "PER*IC*EDI DESK*TE*5555550100",
        "NM1*40*2*PAYER*****46*PAYER01",
        "HL*1**20*1",
        f"NM1*85*2*BILLING GROUP*****XX*{BILLING_NPI}",
        "N3*100 MAIN ST",
        "N4*SPRINGFIELD*IL*627010001",
        "REF*EI*371234567",
        f"HL*2*1*22*{1 if patient else 0}",
        f"SBR*P*{'' if patient else '18'}*******CI",
        f"NM1*IL*1*DOE*JANE****MI*{member}",
        "NM1*PR*2*PAYER*****PI*PAYER01",
    ]
    if patient:
        segments += ["HL*3*2*23*0", "PAT*19", "NM1*QC*1*DOE*JIM", "N3*1 ELM ST"]
        segments += ["N4*SPRINGFIELD*IL*627010001", "DMG*D8*20100101*M"]
    for loop in claims or (claim(),):
        segments += loop
    segments.append(f"SE*{len(segments) + 1 + count_delta}*{control}")
    return segments


def interchange(
    *transactions: list[str],
    control: str = "000000001",
    trailer_control: str | None = None,
    version: str = "005010X222A1",
) -> str:
    """ISA/GS ... GE/IEA around the transaction sets, one segment a line."""
    segments = [
        "ISA*00*          *00*          *ZZ*CLEARINGHOUSE  *ZZ*STREAMEDITS    *250311*1302*^*00501*"
        f"{control}*0*T*:",
        f"GS*HC*CLEARINGHOUSE*STREAMEDITS*20250311*1302*1*X*{version}",
    ]
    for loop in transactions or (transaction(),):
        segments += loop
    segments += [f"GE*{len(transactions) or 1}*1", f"IEA*1*{trailer_control or control}"]
    return "".join(f"{s}~\n" for s in segments)
