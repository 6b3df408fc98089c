"""`check --format`: X12 837P and FHIR input decided as their NDJSON form is, bad claims refused
one by one with where and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_edits.formats.reader import read_claims
from stream_edits.kafka.topics import CONTRACT_DIR
from tests.unit.formats.x12_builder import claim, interchange, service, transaction

SAMPLES = CONTRACT_DIR / "samples"
# Each holds the same claims as NDJSON (.ndjson), X12 837P (.837p) and a FHIR Bundle (.fhir.json).
STEMS = [
    SAMPLES / "claim-lines",
    SAMPLES / "seed" / "thoracic-surgery",
    SAMPLES / "seed" / "rib-fractures",
    SAMPLES / "seed" / "breast-surgery",
]
FORMATS = {"x12-837p": ".837p", "fhir-claim": ".fhir.json"}


def check(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_edits", "check", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def rejects(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(row) for row in result.stderr.splitlines()]


def by_patient_control_number(output: bytes, source: Path, input_format: str) -> bytes:
    """Decisions of converted input named as the NDJSON samples name them: by CLM01, in the
    decision, its cause and its edits' related lines."""
    with read_claims(str(source), input_format) as claims:
        events = [orjson.loads(line) for line in claims.lines]
    clm01 = {e["claim_id"]: e["patient_control_number"] for e in events}
    rows = [orjson.loads(row) for row in output.splitlines()]
    for row in rows:
        row["claim_id"] = row.pop("patient_control_number")
        if row["changed_by"] is not None:
            row["changed_by"]["claim_id"] = clm01[row["changed_by"]["claim_id"]]
        for edit in row["edits"]:
            for related in edit["related_lines"]:
                related["claim_id"] = clm01[related["claim_id"]]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


@pytest.mark.parametrize("stem", STEMS, ids=[s.name for s in STEMS])
@pytest.mark.parametrize("input_format", sorted(FORMATS))
def test_x12_and_fhir_forms_get_the_decisions_of_the_ndjson_form_byte_for_byte(
    stem: Path, input_format: str
) -> None:
    ndjson = check(stem.with_suffix(".ndjson"))
    source = Path(f"{stem}{FORMATS[input_format]}")
    converted = check("--format", input_format, source)

    assert (converted.returncode, converted.stderr) == (0, b"")
    named = by_patient_control_number(converted.stdout, source, input_format)
    assert ndjson.stdout and named == ndjson.stdout


@pytest.mark.parametrize("stem", STEMS, ids=[s.name for s in STEMS])
def test_every_denial_of_the_samples_carries_the_adjustment_codes_of_its_edit(stem: Path) -> None:
    codes = {
        "MUE_EXCEEDED": {"group_code": "CO", "carc": "151", "rarc": "N362"},
        "ADDON_WITHOUT_PRIMARY": {"group_code": "CO", "carc": "B15", "rarc": "N122"},
        "PTP_BUNDLED": {"group_code": "CO", "carc": "236"},
    }
    decisions = [
        orjson.loads(row) for row in check(stem.with_suffix(".ndjson")).stdout.splitlines()
    ]
    edits = [edit for d in decisions for edit in d["edits"]]

    assert edits and all(edit["adjustment"] == codes[edit["code"]] for edit in edits)


@pytest.mark.parametrize(
    ("input_format", "good", "refused"),
    [
        (
            "x12-837p",
            {"G7001", "G7006"},
            {
                None: "CLM01 in CLM segment 43",
                "X7003": "DTP segment 75",
                "X7004": "NM109 in NM1 segment 94",
                "X7005": "SE segment 126",
            },
        ),
        (
            "fhir-claim",
            {"G8001", "G8005"},
            {
                "X8002": "Bundle.entry[5].resource.item[1].productOrService",
                "X8003": "Bundle.entry[7].resource.identifier[0].value",
                "X8004": "Bundle.entry[10].resource.patient",
            },
        ),
    ],
)
def test_bad_claims_are_refused_one_by_one_naming_where_and_the_rest_are_decided(
    input_format: str, good: set[str], refused: dict[str | None, str]
) -> None:
    path = SAMPLES / f"bad-claim-lines{FORMATS[input_format]}"

    result = check("--format", input_format, path)

    assert result.returncode == 0
    decided = {orjson.loads(row)["patient_control_number"] for row in result.stdout.splitlines()}
    assert decided == good
    found = {r.get("claim_id"): r for r in rejects(result)}
    assert set(found) == set(refused)
    for claim_id, where in refused.items():
        assert any(e["field"] == where for e in found[claim_id]["errors"]), found[claim_id]
        assert where in found[claim_id]["reason"]


def test_a_file_sent_twice_is_an_exact_redelivery_not_a_conflict(tmp_path: Path) -> None:
    once = SAMPLES / "seed" / "breast-surgery.837p"
    twice = tmp_path / "twice.ndjson"
    twice.write_bytes(b"\n".join([*read_claims(str(once), "x12-837p").lines] * 2))

    result = check(twice)

    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == check("--format", "x12-837p", once).stdout


def test_a_correction_naming_no_claim_in_converted_input_is_reported_where_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "claims.837p"
    text = interchange(transaction(claim("C2", service(1, "64461"), frequency="7", original="C9")))
    path.write_text(text)

    result = check("--format", "x12-837p", path)

    [notice] = rejects(result)
    [decision] = [orjson.loads(row) for row in result.stdout.splitlines()]
    assert notice["code"] == "unresolved_reference" and notice["claim_id"] == decision["claim_id"]
    lx = 1 + next(i for i, seg in enumerate(text.split("~\n")) if seg.startswith("LX*"))
    assert "input_line" not in notice and notice["reason"].endswith(f"(LX segment {lx})")
    assert decision["status"] == "accept"


def test_converted_input_can_come_from_stdin() -> None:
    stem = SAMPLES / "seed" / "breast-surgery"
    piped = check("--format", "x12-837p", "-", stdin=stem.with_suffix(".837p").read_bytes())

    assert piped.returncode == 0
    named = by_patient_control_number(piped.stdout, stem.with_suffix(".837p"), "x12-837p")
    assert named == check(stem.with_suffix(".ndjson")).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "x12-837p", SAMPLES / "claim-lines.ndjson"],
            "not a readable X12 interchange",
        ),
        (["--format", "fhir-claim", SAMPLES / "claim-lines.837p"], "neither JSON nor NDJSON"),
        (
            ["--received-at", "2025-01-01T00:00:00Z", SAMPLES / "claim-lines.ndjson"],
            "--received-at is for converted input",
        ),
        (
            [
                "--format",
                "fhir-claim",
                "--received-at",
                "2025-01-01",
                SAMPLES / "claim-lines.ndjson",
            ],
            "not an ISO 8601 time with a zone",
        ),
    ],
    ids=["ndjson-as-x12", "x12-as-fhir", "received-at-for-ndjson", "received-at-without-zone"],
)
def test_input_that_is_not_in_the_format_named_exits_2_saying_why(
    args: list[str | Path], message: str
) -> None:
    result = check(*args)

    assert (result.returncode, result.stdout) == (2, b"")
    assert message in result.stderr.decode()


def test_received_at_given_applies_to_every_converted_claim() -> None:
    claims = read_claims(
        str(SAMPLES / "claim-lines.837p"), "x12-837p", received_at="2025-06-01T12:00:00+02:00"
    )

    received = {orjson.loads(line)["received_at"] for line in claims.lines}
    assert received == {"2025-06-01T12:00:00+02:00"}
