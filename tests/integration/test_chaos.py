"""`stream-edits chaos` at a small size: every fault kind against a broker of its own (kill -9 of
the worker twice and of the broker, a second worker joining and leaving, state deleted, stale
state of an earlier broker, poison), lines from four producers. Every row must have 0 missing and
0 wrong decisions and a dead letter for every invalid record; the JSON has the scoreboard's
columns. Leaves no broker running.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from stream_edits_dev.chaos.scoreboard import COLUMNS

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]
LINES = 3_000
TIME_LIMIT_S = 300


def test_every_fault_leaves_every_line_decided_as_check_decides_it(tmp_path: Path) -> None:
    report, workdir = tmp_path / "chaos.json", tmp_path / "run"
    command = [
        sys.executable, "-m", "stream_edits", "chaos", "--lines", str(LINES), "--kills", "2",
        "--seed", "23", "--json", str(report), "--workdir", str(workdir),
        "--time-limit", str(TIME_LIMIT_S),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=TIME_LIMIT_S + 120, check=False
    )
    output = done.stdout + done.stderr[-4000:]
    assert done.returncode == 0, output
    data = orjson.loads(report.read_bytes())
    assert data["ok"] is True and data["error"] is None, output
    assert [c["key"] for c in data["columns"]] == [key for key, _ in COLUMNS]
    rows = data["rows"]
    assert len(rows) == data["steps_planned"] == 9
    for row in rows:
        assert {key for key, _ in COLUMNS} <= row.keys()
        assert row["missing_decisions"] == 0 and row["wrong_decisions"] == 0, row
        assert row["missing_dead_letters"] == 0 and row["dead_letters_of_valid_lines"] == 0, row
        # A line's revisions only increase, and a repeated one repeats its verdict.
        assert row["revision_conflicts_so_far"] == 0, row
        assert row["revision_regressions_so_far"] == 0, row
        assert row["recovery_s"] is not None and row["recovery_s"] > 0, row
    kinds = [row["kind"] for row in rows]
    assert set(kinds) == {
        "none", "worker-kill", "worker-join", "worker-leave", "broker-kill", "state-deleted",
        "stale-state", "poison",
    }  # fmt: skip
    assert rows[-1]["lines"] == data["config"]["records"] > LINES
    assert sum(row["invalid_records"] > 0 for row in rows) == len(rows)  # poison in every step
    assert len(data["config"]["producers"]) == 4  # confluent-kafka is in the test extra
    (stale,) = [row for row in rows if row["kind"] == "stale-state"]
    assert "the worker discarded it (cluster change logged)" in stale["notes"], stale
    assert "stream-edits chaos --lines 3000" in data["command"]
    for row in rows:  # the scoreboard printed
        assert f"│ {row['fault']} " in done.stdout, done.stdout
    broker = Settings(kafka_data_dir=workdir / "kafka")
    assert local.running_pid(broker) is None  # the run stopped its broker
