"""`stream-edits check` end to end: the real command line in a subprocess, NDJSON in and out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_edits.rules.loader import DEFAULT_DIRECTORY
from tests.factories import line, void

DECISION_FIELDS = {
    "claim_id",
    "line_number",
    "member_id",
    "date_of_service",
    "procedure_code",
    "status",
    "edits",
    "revision",
    "changed_by",
}


def ndjson(*events: Any) -> bytes:
    """Events as NDJSON, each with only the fields a producer would send."""
    return b"".join(e.model_dump_json(exclude_unset=True).encode() + b"\n" for e in events)


def check(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m stream_edits check ARGS` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "stream_edits", "check", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def records(output: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(row) for row in output.splitlines()]


def by_line(output: bytes) -> dict[tuple[str, int], dict[str, Any]]:
    return {(d["claim_id"], d["line_number"]): d for d in records(output)}


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "claims.ndjson"
    path.write_bytes(ndjson(line("C1", 1, "64461"), line("C1", 2, "76942"), line("C1", 3, "99213")))
    return path


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped rules directory."""
    return Path(shutil.copytree(DEFAULT_DIRECTORY, tmp_path / "rules"))


def test_decisions_go_to_stdout_one_json_object_per_line_with_the_contract_fields(
    events_file: Path,
) -> None:
    result = check(events_file)

    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    decisions = records(result.stdout)
    assert [(d["claim_id"], d["line_number"]) for d in decisions] == [
        ("C1", 1),
        ("C1", 2),
        ("C1", 3),
    ]
    for decision in decisions:
        assert set(decision) == DECISION_FIELDS
        assert decision["member_id"] == "M1"
        assert decision["date_of_service"] == "2025-03-14"
        assert decision["revision"] == 1
    primary, guidance, visit = decisions
    assert (primary["procedure_code"], primary["status"]) == ("64461", "accept")
    assert primary["edits"] == []
    assert (visit["status"], visit["edits"]) == ("accept", [])
    assert guidance["status"] == "deny"
    [edit] = guidance["edits"]
    assert set(edit) == {"code", "message", "rule_source", "adjustment", "related_lines"}
    assert edit["code"] == "PTP_BUNDLED"
    assert edit["related_lines"] == [{"claim_id": "C1", "line_number": 1}]
    assert guidance["changed_by"] == {"claim_id": "C1", "line_number": 2}
    assert edit["adjustment"] == {"group_code": "CO", "carc": "236"}
    assert "64461" in edit["message"]
    assert edit["rule_source"]["table"] == "PTP"
    assert edit["rule_source"]["file"] == "ptp_practitioner.txt"
    assert edit["rule_source"]["effective_date"] == "2016-01-01"


def test_invalid_lines_are_rejected_on_stderr_naming_the_field_and_the_run_still_exits_0(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.ndjson"
    bad_npi = line("C2", 1, "99213").model_dump(mode="json", exclude_unset=True)
    bad_npi["provider_npi"] = "1234567890"  # fails the Luhn check digit
    path.write_bytes(
        ndjson(line("C1", 1, "99213"))
        + orjson.dumps(bad_npi)
        + b"\n"
        + b'{"claim_id": "C3", "line_number": \n'
        + b"\n"  # blank lines are skipped, but still counted
        + orjson.dumps({**bad_npi, "claim_id": "C4", "procedure_code": "6446", "units": 0})
        + b"\n"
    )

    result = check(path)

    assert result.returncode == 0
    assert list(by_line(result.stdout)) == [("C1", 1)]
    rejects = records(result.stderr)
    assert [r["input_line"] for r in rejects] == [2, 3, 5]
    assert "provider_npi" in rejects[0]["reason"]
    assert rejects[0]["errors"][0]["field"] == "provider_npi"
    assert rejects[1]["reason"].startswith("malformed JSON")
    assert {e["field"] for e in rejects[2]["errors"]} >= {"units", "procedure_code"}


def test_rejects_option_writes_the_rejects_to_that_file_instead_of_stderr(tmp_path: Path) -> None:
    path = tmp_path / "claims.ndjson"
    path.write_bytes(ndjson(line("C1", 1, "99213")) + b'{"claim_id": "C2"}\n')
    rejects = tmp_path / "rejects.ndjson"

    result = check(path, "--rejects", rejects)

    assert result.returncode == 0
    assert result.stderr == b""
    assert list(by_line(result.stdout)) == [("C1", 1)]
    [reject] = records(rejects.read_bytes())
    assert reject["input_line"] == 2
    assert "member_id" in reject["reason"]


def test_a_dash_reads_the_events_from_stdin(events_file: Path) -> None:
    result = check("-", stdin=events_file.read_bytes())

    assert result.returncode == 0, result.stderr
    assert result.stdout == check(events_file).stdout
    assert len(records(result.stdout)) == 3


def test_a_missing_input_file_exits_2_with_a_message_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ndjson"

    result = check(missing)

    assert result.returncode == 2
    assert result.stdout == b""
    assert str(missing).encode() in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="no input file"),
        pytest.param(("claims.ndjson", "--no-such-option"), id="unknown option"),
        pytest.param(("claims.ndjson", "--rules"), id="option without its value"),
        pytest.param(("claims.ndjson", "--rules", "no-such-rules-dir"), id="missing rules dir"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], events_file: Path) -> None:
    args = tuple(str(events_file) if a == "claims.ndjson" else a for a in args)

    result = check(*args)

    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr


@pytest.mark.parametrize(
    ("file", "good", "bad", "problem"),
    [
        pytest.param(
            "mue_practitioner.csv", "64462,1,", "64462,one,", "MUE value 'one'", id="MUE value"
        ),
        pytest.param(
            "aoc.csv", "64461,64462,1,", "64461,64462,4,", "AOC Edit Type '4'", id="AOC type"
        ),
        pytest.param(
            "ptp_practitioner.txt",
            "64461\t77002\t\t20160101",
            "64461\t77002\t\t2016-01-01",
            "Effective Date '2016-01-01'",
            id="PTP date",
        ),
    ],
)
def test_a_bad_rules_table_exits_2_naming_the_file_and_row(
    rules_copy: Path, events_file: Path, file: str, good: str, bad: str, problem: str
) -> None:
    table = rules_copy / file
    text = table.read_bytes().decode("utf-8")
    physical = text.splitlines()
    row = next(n for n, cells in enumerate(physical, start=1) if cells.startswith(good))
    table.write_bytes(text.replace(good, bad, 1).encode("utf-8"))

    result = check(events_file, "--rules", rules_copy)

    assert result.returncode == 2
    assert result.stdout == b""
    message = result.stderr.decode()
    assert f"{file}, row {row}:" in message
    assert problem in message


def test_a_bad_rules_manifest_exits_2_naming_the_manifest(
    rules_copy: Path, events_file: Path
) -> None:
    (rules_copy / "manifest.toml").write_text('[[mue]]\nfile = "mue_practitioner.csv"\n')

    result = check(events_file, "--rules", rules_copy)

    assert result.returncode == 2
    assert result.stdout == b""
    message = result.stderr.decode()
    assert "manifest.toml" in message
    assert "effective_date" in message


def test_revision_counts_changes_so_a_late_primary_brings_the_add_on_to_revision_2(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late-primary.ndjson"
    # The add-on arrives first (denied: no primary yet), then its primary on another claim.
    path.write_bytes(ndjson(line("C1", 1, "64462"), line("C2", 1, "64461", minutes=30)))

    result = check(path)

    assert result.returncode == 0, result.stderr
    decisions = by_line(result.stdout)
    assert len(result.stdout.splitlines()) == 2
    addon, primary = decisions[("C1", 1)], decisions[("C2", 1)]
    assert (addon["status"], addon["edits"], addon["revision"]) == ("accept", [], 2)
    assert addon["changed_by"] == {"claim_id": "C2", "line_number": 1}  # the primary's arrival
    assert (primary["status"], primary["revision"]) == ("accept", 1)


def test_a_void_of_the_primary_claim_denies_the_add_on_again(tmp_path: Path) -> None:
    path = tmp_path / "void.ndjson"
    path.write_bytes(
        ndjson(
            line("C1", 1, "64462"),
            line("C2", 1, "64461", minutes=30),
            void("V2", "C2", minutes=60),
        )
    )

    decisions = by_line(check(path).stdout)

    assert (decisions[("C2", 1)]["status"], decisions[("C2", 1)]["revision"]) == ("void", 2)
    addon = decisions[("C1", 1)]
    assert (addon["status"], addon["revision"]) == ("deny", 3)
    assert [e["code"] for e in addon["edits"]] == ["ADDON_WITHOUT_PRIMARY"]
    assert addon["edits"][0]["related_lines"] == []  # the only primary billed is voided
    assert addon["changed_by"] == {"claim_id": "V2", "line_number": None}


def test_a_redelivered_line_produces_no_extra_output_line_and_no_reject(tmp_path: Path) -> None:
    path = tmp_path / "redelivered.ndjson"
    once = ndjson(line("C1", 1, "64461"), line("C1", 2, "64462"))
    path.write_bytes(once + once.splitlines(keepends=True)[0])

    result = check(path)

    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout == check("-", stdin=once).stdout
    assert len(result.stdout.splitlines()) == 2
