"""`stream-edits reconcile` without Kafka: latest decision per line, agreement, kinds of change,
and the command on NDJSON files built from `stream-edits check` of the samples."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_edits.cli import reconcile as reconcile_command
from stream_edits.jobs.check import final_decisions
from stream_edits.jobs.reconcile import Difference, Side, Verdict, compare, count_kinds
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings
from tests.factories import NPI_A

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples" / "claim-lines.ndjson"
RULE_SOURCE = {
    "table": "MUE",
    "file": "mue_practitioner.csv",
    "row": 4,
    "effective_date": "2016-01-01",
}

Wire = dict[str, Any]


def edit(code: str) -> Wire:
    return {"code": code, "message": f"{code} failed", "rule_source": RULE_SOURCE}


def decision(
    claim_id: str = "C1",
    line_number: int = 1,
    status: str = "accept",
    edits: tuple[str, ...] = (),
    revision: int = 1,
) -> Wire:
    """A decision as `check` prints it."""
    return {
        "claim_id": claim_id,
        "line_number": line_number,
        "member_id": "M10001",
        "date_of_service": "2025-03-10",
        "procedure_code": "64461",
        "status": status,
        "edits": [edit(code) for code in edits],
        "revision": revision,
    }


def as_stream(d: Wire, revision: int, offset: int) -> Wire:
    """`d` as the worker would publish it: its own revision, NPI, time and source."""
    return {
        **d,
        "revision": revision,
        "provider_npi": NPI_A,
        "decided_at": f"2025-03-15T09:{offset % 60:02d}:00+00:00",
        "source": {"topic": "claim-lines", "partition": offset % 4, "offset": offset},
    }


def ndjson(decisions: list[Wire]) -> bytes:
    return b"".join(orjson.dumps(d) + b"\n" for d in decisions)


def side_of(*decisions: Wire) -> Side:
    side = Side("test")
    for number, d in enumerate(decisions, start=1):
        side.add(orjson.dumps(d), f"line {number}")
    return side


@pytest.fixture(scope="module")
def checked() -> list[Wire]:
    """`stream-edits check topics/samples/claim-lines.ndjson`: the final decision per line."""
    lines = SAMPLES.read_bytes().splitlines(keepends=True)
    return [d.to_wire() for d in final_decisions(lines, load_rules())]


def line_of(decisions: list[Wire], claim_id: str, line_number: int) -> Wire:
    return next(
        d for d in decisions if (d["claim_id"], d["line_number"]) == (claim_id, line_number)
    )


# --- latest decision per line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("reads", "latest"),
    [
        pytest.param([(1, "accept"), (2, "deny")], (2, "deny"), id="higher-revision-read-last"),
        pytest.param([(2, "deny"), (1, "accept")], (2, "deny"), id="higher-revision-read-first"),
        pytest.param([(2, "accept"), (2, "deny")], (2, "deny"), id="tie-the-one-read-last"),
        pytest.param([(2, "deny"), (2, "accept")], (2, "accept"), id="tie-other-order"),
        pytest.param([(1, "accept"), (3, "void"), (2, "deny")], (3, "void"), id="newest-mid"),
        pytest.param([(1, "accept"), (1, "accept")], (1, "accept"), id="redelivery"),
    ],
)
def test_the_latest_decision_of_a_line_is_its_highest_revision_then_the_one_read_last(
    reads: list[tuple[int, str]], latest: tuple[int, str]
) -> None:
    side = side_of(*(decision(status=status, revision=revision) for revision, status in reads))

    assert side.latest == {("C1", 1): (latest[0], Verdict(latest[1], ()))}


def test_lines_are_told_apart_by_claim_id_and_line_number() -> None:
    side = side_of(
        decision("C1", 1, revision=3),
        decision("C1", 2, "deny", ("ADDON_WITHOUT_PRIMARY",)),
        decision("C2", 1, "void", revision=2),
    )

    assert side.verdicts == {
        ("C1", 1): Verdict("accept", ()),
        ("C1", 2): Verdict("deny", ("ADDON_WITHOUT_PRIMARY",)),
        ("C2", 1): Verdict("void", ()),
    }


def test_values_that_are_not_decisions_are_counted_and_located_not_fatal() -> None:
    side = Side("test")
    values = [b"not json", b"{}", b'{"claim_id": "C1"}', orjson.dumps(decision()), b"\xff\xfe"]
    for number, value in enumerate(values, start=1):
        side.add(value, f"line {number}")

    assert side.unreadable == 4
    assert side.unreadable_at == ["line 1", "line 2", "line 3", "line 5"]
    assert side.verdicts == {("C1", 1): Verdict("accept", ())}


# --- agreement --------------------------------------------------------------------------------

LIVE = as_stream(decision(status="deny", edits=("PTP_BUNDLED", "MUE_EXCEEDED")), 4, 17)


@pytest.mark.parametrize(
    ("replayed", "agree"),
    [
        pytest.param(as_stream(LIVE, 1, 2), True, id="revision-decided_at-source-ignored"),
        pytest.param(
            decision(status="deny", edits=("PTP_BUNDLED", "MUE_EXCEEDED")), True, id="check-output"
        ),
        pytest.param({**LIVE, "edits": LIVE["edits"][::-1]}, False, id="edit-order-matters"),
        pytest.param({**LIVE, "edits": LIVE["edits"][:1]}, False, id="one-edit-fewer"),
        pytest.param({**LIVE, "status": "void"}, False, id="status"),
    ],
)
def test_two_decisions_agree_on_status_and_edit_codes_in_order(replayed: Wire, agree: bool) -> None:
    live, replay = side_of(LIVE).verdicts, side_of(replayed).verdicts

    assert compare(live, replay) == (
        (1, []) if agree else (0, [Difference(("C1", 1), live[("C1", 1)], replay[("C1", 1)])])
    )


def test_differences_come_sorted_by_claim_id_then_line_number() -> None:
    a = {("C2", 1): Verdict("accept", ()), ("C1", 10): Verdict("accept", ())}
    b = {("C1", 2): Verdict("accept", ()), ("C1", 10): Verdict("void", ())}

    agree, differences = compare(a, b)

    assert agree == 0
    assert [d.line for d in differences] == [("C1", 2), ("C1", 10), ("C2", 1)]


# --- kinds of change --------------------------------------------------------------------------

ACCEPT = Verdict("accept", ())
MUE = Verdict("deny", ("MUE_EXCEEDED",))
NO_PRIMARY = Verdict("deny", ("ADDON_WITHOUT_PRIMARY",))


@pytest.mark.parametrize(
    ("before", "after", "kind", "printed"),
    [
        (ACCEPT, MUE, "accept→deny MUE_EXCEEDED", "C1001#2       accept → deny MUE_EXCEEDED"),
        (
            NO_PRIMARY,
            ACCEPT,
            "deny ADDON_WITHOUT_PRIMARY→accept",
            "C1001#2       deny ADDON_WITHOUT_PRIMARY → accept",
        ),
        (
            Verdict("deny", ("PTP_BUNDLED", "MUE_EXCEEDED")),
            Verdict("deny", ("MUE_EXCEEDED", "PTP_BUNDLED")),
            "deny PTP_BUNDLED,MUE_EXCEEDED→deny MUE_EXCEEDED,PTP_BUNDLED",
            "C1001#2       deny PTP_BUNDLED,MUE_EXCEEDED → deny MUE_EXCEEDED,PTP_BUNDLED",
        ),
        (None, MUE, "missing in A", "C1001#2       - → deny MUE_EXCEEDED  (missing in A)"),
        (ACCEPT, None, "missing in B", "C1001#2       accept → -  (missing in B)"),
    ],
)
def test_each_difference_has_a_kind_and_a_printed_line(
    before: Verdict | None, after: Verdict | None, kind: str, printed: str
) -> None:
    difference = Difference(("C1001", 2), before, after)

    assert difference.kind == kind
    assert difference.format() == printed


def test_kinds_are_counted_most_frequent_first_then_by_name() -> None:
    differences = [
        Difference(("C1", 1), ACCEPT, None),
        Difference(("C2", 1), ACCEPT, MUE),
        Difference(("C3", 1), NO_PRIMARY, ACCEPT),
        Difference(("C4", 1), ACCEPT, MUE),
    ]

    assert list(count_kinds(differences).items()) == [
        ("accept→deny MUE_EXCEEDED", 2),
        ("deny ADDON_WITHOUT_PRIMARY→accept", 1),
        ("missing in B", 1),
    ]


# --- the command on NDJSON files ------------------------------------------------------------


def run(a: str | Path, b: str | Path, **options: Any) -> int:
    """`stream-edits reconcile A B` on files, `options` as `ReconcileOptions` holds them."""
    chosen = reconcile_command.ReconcileOptions(str(a), str(b), **options)
    return reconcile_command.run(Settings(), chosen)


def write(path: Path, decisions: list[Wire], extra: bytes = b"") -> Path:
    path.write_bytes(ndjson(decisions) + extra)
    return path


def stream_history(decisions: list[Wire]) -> list[Wire]:
    """`tail --json` of a live run: every line's revisions (an earlier, different one for some),
    in an order that keeps each line's revisions in sequence but mixes the lines."""
    rng = random.Random(7)
    history: list[Wire] = []
    for offset, d in enumerate(decisions):
        if d["status"] != "accept":
            history.append(as_stream({**d, "status": "accept", "edits": []}, 1, offset))
        history.append(as_stream(d, 2, offset + 100))
    by_line: dict[tuple[str, int], list[Wire]] = {}
    for h in history:
        by_line.setdefault((h["claim_id"], h["line_number"]), []).append(h)
    queues = list(by_line.values())
    mixed = []
    while queues:
        queue = rng.choice(queues)
        mixed.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return mixed


def test_check_output_and_a_live_history_of_the_same_decisions_agree(
    checked: list[Wire], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "check.ndjson", checked)
    b = write(tmp_path / "tail.ndjson", stream_history(checked))

    assert run(a, b, json_path=tmp_path / "report.json") == 0

    assert capsys.readouterr().out == "A: 17 lines, B: 17 lines, agree: 17, differ: 0\n"
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report == {
        "a": {"source": str(a), "lines": 17, "unreadable": 0},
        "b": {"source": str(b), "lines": 17, "unreadable": 0},
        "agree": 17,
        "differences": [],
        "by_kind": {},
    }


@pytest.fixture
def changed(checked: list[Wire]) -> list[Wire]:
    """The samples' decisions under other rules: C1001#1 and C1010#2 denied by MUE, C1003#1
    accepted, C1011#1 gone and C9001#1 new."""
    mue = line_of(checked, "C1006", 1)["edits"]
    denied = {("C1001", 1), ("C1010", 2)}
    out = []
    for d in checked:
        line = (d["claim_id"], d["line_number"])
        if line in denied:
            out.append({**d, "status": "deny", "edits": mue, "revision": 2})
        elif line == ("C1003", 1):
            out.append({**d, "status": "accept", "edits": []})
        elif line != ("C1011", 1):
            out.append(d)
    return [*out, decision("C9001", 1)]


def test_differences_are_printed_counted_and_written_without_member_ids(
    checked: list[Wire], changed: list[Wire], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "live.ndjson", checked)
    b = write(tmp_path / "what-if.ndjson", changed)

    assert run(a, b, json_path=tmp_path / "report.json") == 1

    out = capsys.readouterr().out
    assert out.splitlines() == [
        "C1001#1       accept → deny MUE_EXCEEDED",
        "C1003#1       deny ADDON_WITHOUT_PRIMARY → accept",
        "C1010#2       accept → deny MUE_EXCEEDED",
        "C1011#1       accept → -  (missing in B)",
        "C9001#1       - → accept  (missing in A)",
        "accept→deny MUE_EXCEEDED: 2",
        "deny ADDON_WITHOUT_PRIMARY→accept: 1",
        "missing in A: 1",
        "missing in B: 1",
        "A: 17 lines, B: 17 lines, agree: 13, differ: 5",
    ]
    assert "M100" not in out
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["agree"] == 13
    assert report["differences"][:2] == [
        {
            "line": ["C1001", 1],
            "kind": "accept→deny MUE_EXCEEDED",
            "before": {"status": "accept", "edits": []},
            "after": {"status": "deny", "edits": ["MUE_EXCEEDED"]},
        },
        {
            "line": ["C1003", 1],
            "kind": "deny ADDON_WITHOUT_PRIMARY→accept",
            "before": {"status": "deny", "edits": ["ADDON_WITHOUT_PRIMARY"]},
            "after": {"status": "accept", "edits": []},
        },
    ]
    assert [(d["line"], d["before"], d["after"]) for d in report["differences"][3:]] == [
        (["C1011", 1], {"status": "accept", "edits": []}, None),
        (["C9001", 1], None, {"status": "accept", "edits": []}),
    ]
    assert report["by_kind"] == {
        "accept→deny MUE_EXCEEDED": 2,
        "deny ADDON_WITHOUT_PRIMARY→accept": 1,
        "missing in A": 1,
        "missing in B": 1,
    }
    assert "M100" not in (tmp_path / "report.json").read_text()


def test_limit_caps_the_printed_differences_not_the_counts(
    checked: list[Wire], changed: list[Wire], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write(tmp_path / "a.ndjson", checked), write(tmp_path / "b.ndjson", changed)

    assert run(a, b, json_path=tmp_path / "report.json", limit=1) == 1

    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "C1001#1       accept → deny MUE_EXCEEDED",
        "... 4 more differences (--limit)",
        "accept→deny MUE_EXCEEDED: 2",
    ]
    assert lines[-1].endswith("differ: 5")
    assert len(orjson.loads((tmp_path / "report.json").read_bytes())["differences"]) == 5


def test_a_later_line_of_a_file_replaces_an_equal_revision_and_stdin_is_a_source(
    checked: list[Wire], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `check` output concatenated with a second run's: the later line of each pair wins.
    first = [{**d, "status": "void", "edits": []} for d in checked]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(ndjson(first + checked))))

    assert run("-", write(tmp_path / "b.ndjson", checked)) == 0


def test_unreadable_lines_are_reported_on_stderr_and_in_the_counts_but_not_fatal(
    checked: list[Wire], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.ndjson", checked)
    b = write(tmp_path / "b.ndjson", checked, extra=b"\nnot json\n{}\n")

    assert run(a, b, json_path=tmp_path / "report.json") == 0

    captured = capsys.readouterr()
    assert captured.err == (
        f"stream-edits reconcile: B ({b}): 2 unreadable, not decisions: line 19, line 20\n"
    )
    assert captured.out.endswith("differ: 0, unreadable: A 0, B 2\n")
    assert orjson.loads((tmp_path / "report.json").read_bytes())["b"]["unreadable"] == 2


@pytest.mark.parametrize(
    ("a", "b", "options", "message"),
    [
        pytest.param("-", "-", {}, "only one of A and B can be - (stdin)", id="stdin-twice"),
        pytest.param("a.ndjson", ".", {}, "cannot read .: Is a directory", id="directory"),
        pytest.param(
            "a.ndjson", "a.ndjson", {"limit": -1}, "--limit must be 0 or more, not -1", id="limit"
        ),
        pytest.param(
            "a.ndjson",
            "a.ndjson",
            {"json_path": Path("no/report.json")},
            "cannot write no/report.json: No such file or directory",
            id="json-path",
        ),
    ],
)
def test_usage_errors_and_unreadable_sources_exit_2_with_one_line(
    a: str,
    b: str,
    options: dict[str, Any],
    message: str,
    checked: list[Wire],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.ndjson", checked)

    assert run(a, b, **options) == 2

    assert capsys.readouterr() == ("", f"stream-edits reconcile: {message}\n")


def test_a_name_that_is_no_file_is_a_topic_and_an_unreachable_broker_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    existing = write(tmp_path / "a.ndjson", [decision()])

    chosen = reconcile_command.ReconcileOptions(str(existing), "claim-edits-what-if")
    assert reconcile_command.run(settings, chosen) == 2

    err = capsys.readouterr().err
    assert err.startswith("stream-edits reconcile: kafka: nothing listens at 127.0.0.1:1 ")
    assert err.count("\n") == 1
