"""The chaos scoreboard: which rows fail, the table's columns, the JSON `--json` writes, and the
command's options."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from stream_edits.cli import build_parser
from stream_edits.cli.chaos import options as chaos_options
from stream_edits.settings import Settings
from stream_edits_dev.chaos.options import DEFAULT_LINES, Config
from stream_edits_dev.chaos.runner import command_line
from stream_edits_dev.chaos.scoreboard import COLUMNS, Row, document, markdown, table
from stream_edits_dev.chaos.verify import Score

TITLES = [
    "fault",
    "lines",
    "missing decisions",
    "wrong decisions",
    "missing dead letters",
    "duplicate (line, revision) records seen",
    "recovery time",
]


def row(recovery: float | None = 4.2, crashes: int = 0, **counts: int) -> Row:
    fields = dict(
        records=100, expected=90, missing=0, wrong=0, invalid=5, dead_letters_missing=0,
        dead_letters_wrong=0, duplicates=7,
    )  # fmt: skip
    fields.update(counts)
    return Row(
        "worker kill -9 (1/5)", "worker-kill", 100, 50, Score(**fields), 3, 2, recovery, crashes
    )


def test_a_row_fails_on_any_missing_or_wrong_answer_a_crash_or_no_recovery() -> None:
    assert row().ok
    assert not row(missing=1).ok
    assert not row(wrong=1).ok
    assert not row(dead_letters_missing=1).ok
    assert not row(dead_letters_wrong=1).ok
    assert not row(crashes=1).ok
    assert not row(recovery=None).ok
    assert row(recovery=None).recovery_text() == "not recovered"


def test_the_table_and_markdown_have_the_issues_columns() -> None:
    assert [title for _, title in COLUMNS] == TITLES
    board = table([row(), row(missing=3)])
    assert [column.header for column in board.columns] == TITLES
    assert board.row_count == 2
    text = markdown([row(), row(wrong=2)]).splitlines()
    assert text[0] == "| " + " | ".join(TITLES) + " |"
    assert text[2] == "| worker kill -9 (1/5) | 100 | 0 | 0 | 0 | 3 | 4.2 s |"
    assert text[3] == "| worker kill -9 (1/5) | 100 | 0 | 2 | 0 | 3 | 4.2 s |"


def test_the_json_has_every_column_per_row_and_fails_with_any_failed_row() -> None:
    good = document([row()], {"command": "stream-edits chaos", "seed": 11, "error": None})
    assert good["ok"] is True and good["seed"] == 11
    assert [c["key"] for c in good["columns"]] == [key for key, _ in COLUMNS]
    first = good["rows"][0]
    assert {key for key, _ in COLUMNS} <= first.keys()
    assert (first["missing_decisions"], first["wrong_decisions"], first["duplicates"]) == (0, 0, 3)
    assert first["duplicates_same_source"] == 2
    assert first["recovery_s"] == 4.2
    assert document([row(), row(missing=1)], {})["ok"] is False
    assert document([row()], {"error": "time limit"})["ok"] is False
    assert document([], {})["ok"] is False


def config(*args: str) -> Config:
    return chaos_options(build_parser().parse_args(["chaos", *args]), Settings())


def test_the_defaults_run_every_fault_over_at_least_50000_lines() -> None:
    default = config()
    assert default.lines == DEFAULT_LINES >= 50_000
    assert default.kills == 5
    assert default.kinds == ["worker-kill", "join-leave", "broker-kill", "state-deleted",
                             "stale-state", "poison"]  # fmt: skip
    assert default.json is None and not default.keep


def test_options_that_cannot_run_are_refused() -> None:
    with pytest.raises(ValueError, match="--faults"):
        config("--faults", "worker-kill,flood")
    with pytest.raises(ValueError, match="2 workers need --partitions 2"):
        config("--partitions", "1")
    with pytest.raises(ValueError, match="3 workers need --partitions 3"):
        config("--partitions", "2", "--workers", "3")
    assert config("--partitions", "3", "--workers", "3").workers == 3
    with pytest.raises(ValueError, match="--workers"):
        config("--workers", "1")
    assert config("--partitions", "1", "--faults", "poison").partitions == 1
    with pytest.raises(ValueError, match="--lines"):
        config("--lines", "100")
    with pytest.raises(ValueError):
        config("--rate", "0")


def test_the_command_line_printed_repeats_the_run() -> None:
    original = config(
        "--lines", "3000", "--kills", "2", "--seed", "4", "--workers", "3", "--json", "x.json"
    )  # fmt: skip
    again = config(*shlex.split(command_line(original))[2:])
    assert again == Config(**{**original.__dict__, "json": None})
    assert again.json is None and original.json == Path("x.json")
