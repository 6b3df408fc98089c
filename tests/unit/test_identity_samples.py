"""`check --format` on files written as a clearinghouse and an EHR send them: corrections that
keep their CLM01 or quote a payer claim control number, two billing providers with one CLM01, a
Patient with only an MRN, a cancelled re-send and dependents get the decisions a payer expects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from stream_edits.formats.identity import patient_digest
from stream_edits.kafka.topics import CONTRACT_DIR

IDENTITY = CONTRACT_DIR / "samples" / "identity"
DEPENDENT = "M20002." + patient_digest("RIVERA", "SOFIA", "20150704")

# (patient control number, member, line, code, final status) of every decided line.
X12_EXPECTED = sorted(
    [
        # Lakeside's original PA1001 (an MUE denial on 2 units) and its first replacement, which
        # kept CLM01 and named it by CLM01, are void: the second replacement quoted the first's
        # payer claim control number.
        ("PA1001", "M20001", 1, "64461", "void"),
        ("PA1001", "M20001", 2, "99213", "void"),
        ("PA1001", "M20001", 1, "64461", "void"),
        ("PA1001", "M20001", 2, "99213", "void"),
        ("PA1001", "M20001", 1, "64461", "accept"),
        ("PA1001", "M20001", 2, "64462", "accept"),
        ("PA1001", "M20001", 3, "99213", "accept"),
        # Northside's own PA1001 for the same member: another claim, not a conflict.
        ("PA1001", "M20001", 1, "64461", "accept"),
        ("PA1001", "M20001", 2, "64462", "accept"),
        # The dependent (2000C) is decided under the subscriber plus a digest, then voided by
        # its payer claim control number.
        ("PA2001", DEPENDENT, 1, "64461", "void"),
    ]
)
FHIR_EXPECTED = sorted(
    [
        ("FH-1001", "M30001", 1, "64461", "void"),  # replaced by FH-1003 (related: replaces)
        ("FH-1001", "M30001", 2, "64462", "void"),
        ("FH-1002", "M30001", 1, "64461", "void"),  # re-sent with status cancelled
        ("FH-2001", "M30001.02", 1, "64461", "accept"),  # the dependent: Coverage.dependent
        ("FH-1003", "M30001", 1, "64461", "accept"),
    ]
)


def check(*args: str | Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_edits", "check", *map(str, args)],
        capture_output=True,
        timeout=120,
        env={**os.environ, **env},
    )


def decided(result: subprocess.CompletedProcess[bytes]) -> list[tuple[Any, ...]]:
    rows = [orjson.loads(row) for row in result.stdout.splitlines()]
    keys = ("patient_control_number", "member_id", "line_number", "procedure_code", "status")
    return sorted(tuple(row[k] for k in keys) for row in rows)


def test_the_clearinghouse_837p_gets_the_decisions_a_payer_expects() -> None:
    result = check("--format", "x12-837p", IDENTITY / "claims.837p")

    assert result.returncode == 0
    assert decided(result) == X12_EXPECTED
    # Northside's void names PA1008, which nobody sent: reported, named by where it is.
    [notice] = [orjson.loads(row) for row in result.stderr.splitlines()]
    assert notice["code"] == "unresolved_reference" and "PA1008" in notice["reason"]
    assert notice["reason"].endswith("(CLM segment 133)")


def test_the_fhir_bundle_gets_the_decisions_a_payer_expects_with_members_from_coverage() -> None:
    result = check("--format", "fhir-claim", IDENTITY / "claims.fhir.json")

    assert (result.returncode, result.stderr) == (0, b"")
    assert decided(result) == FHIR_EXPECTED
    assert not any("MRN" in row[1] for row in decided(result))


def test_with_dependents_identified_by_their_own_id_the_2000c_claims_are_refused() -> None:
    result = check(
        "--format",
        "x12-837p",
        IDENTITY / "claims.837p",
        STREAM_EDITS_DEPENDENT_IDENTITY="patient-member-id",
    )

    refused = [orjson.loads(row) for row in result.stderr.splitlines()]
    assert [r["claim_id"] for r in refused if r["code"] == "invalid_line"] == ["PA2001", "PA2001"]
    assert [row for row in X12_EXPECTED if row[0] != "PA2001"] == decided(result)
