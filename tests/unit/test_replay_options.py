"""Replay's parts that need no broker: where it starts and ends, its local state, its summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_edits.cli import build_parser
from stream_edits.cli import replay as replay_command
from stream_edits.runtime.replay import (
    Plan,
    ReplayError,
    Summary,
    format_summary,
    parse_start,
    parse_time,
)
from stream_edits.runtime.state.tables import LocalMemberTable
from stream_edits.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("earliest", "earliest"),
        ("2026-11-01T00:00:00Z", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T02:00:00+02:00", datetime(2026, 11, 1, tzinfo=UTC)),
        ("0:1200,3:5", {0: 1200, 3: 5}),
    ],
)
def test_from_takes_earliest_a_zoned_timestamp_or_partition_offsets(
    text: str, expected: object
) -> None:
    assert parse_start(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-01T00:00:00", "give a zone"),
        ("yesterday", "not an ISO-8601 timestamp"),
        ("0:x", "PARTITION:OFFSET wants integers"),
    ],
)
def test_a_bad_from_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        parse_start(text)


def test_until_wants_a_zone_too() -> None:
    with pytest.raises(ReplayError, match="give a zone"):
        parse_time("2026-11-01", "--until")


def test_a_plan_counts_only_what_lies_between_its_start_and_end() -> None:
    plan = Plan(read_from={0: 10, 1: 50}, publish_from={0: 20, 1: 50}, until={0: 30, 1: 40})
    assert plan.total == 20  # partition 1 starts past its end: nothing to read


def test_the_local_member_table_keeps_records_and_deletes_them(tmp_path: Path) -> None:
    table = LocalMemberTable(tmp_path / "members")
    table.write(2, [(b"M1", b"{}"), (b"M3", b"{}")])
    table.write(0, [(b"M2", b"[]"), (b"M3", None)])
    assert table.get(3, b"M1") == b"{}"  # one database: the partition does not matter
    table.write(0, [(b"M2", None)])
    assert list(table.stored_keys()) == [b"M1"] and table.changelog_topic is None
    table.close()


def test_the_summary_counts_decisions_by_status_and_edit_and_dead_letters_by_reason() -> None:
    summary = Summary("claim-lines", "audit", lines_read=1000, elapsed_s=2.0)
    summary.stats = {
        "decisions": 990,
        "decisions_by_status": {"accept": 900, "deny": 80, "void": 10},
        "decisions_by_edit": {"MUE_EXCEEDED": 30, "PTP_BUNDLED": 50},
        "dead_letters": 10,
        "dead_letters_by_reason": {"invalid_line": 10},
    }
    data = summary.as_dict()
    assert data["lines_per_s"] == 500.0 and data["decisions_by_status"]["deny"] == 80
    text = format_summary(summary)
    assert "1,000 lines read" in text and "MUE_EXCEEDED" in text and "invalid_line" in text


@pytest.mark.parametrize("live", ["claim-edits", "claim-lines", "claim-lines-dlq"])
def test_a_replay_never_writes_a_live_topic(live: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["replay", "--output-topic", live])
    assert replay_command.run(Settings.model_construct(), replay_command.options(args)) == 2
    assert "is a live topic" in capsys.readouterr().err


def test_an_archive_is_read_whole(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["replay", "--file", "a.ndjson", "--from", "2026-01-01T00:00:00Z", "--output-topic", "t"]
    )
    assert replay_command.run(Settings.model_construct(), replay_command.options(args)) == 2
    assert "an archive is read whole" in capsys.readouterr().err
