"""The scoreboard of a chaos run: one row per fault, as a rich table, markdown and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from stream_edits_dev.chaos.verify import Score

# (JSON key, column title): the columns every row has, in table order.
COLUMNS = (
    ("fault", "fault"),
    ("lines", "lines"),
    ("missing_decisions", "missing decisions"),
    ("wrong_decisions", "wrong decisions"),
    ("missing_dead_letters", "missing dead letters"),
    ("duplicates", "duplicate (line, revision) records seen"),
    ("recovery_s", "recovery time"),
)


@dataclass
class Row:
    """One fault and what the verification after it found."""

    fault: str  # the label: `worker kill -9 (2/5)`
    kind: str  # the Fault value
    lines: int  # records produced so far (each once), all of them verified
    step_lines: int  # records produced during this step
    score: Score
    duplicates: int  # (line, revision) records read during this step that were read before
    replayed: int  # of those, the same event's decision published again (same source)
    recovery_s: float | None  # from the fault to caught up and correct; None: never
    crashes: int = 0  # workers that exited by themselves during the step
    notes: list[str] = field(default_factory=list)
    struck_at: str | None = None  # when the fault struck (ISO 8601, UTC): for the logs

    @property
    def ok(self) -> bool:
        """Caught up, with no missing or wrong decision, every dead letter in place, no crash."""
        return self.recovery_s is not None and self.score.clean and not self.crashes

    def recovery_text(self) -> str:
        """`12.3 s`, or `not recovered`."""
        return "not recovered" if self.recovery_s is None else f"{self.recovery_s:.1f} s"

    def cells(self) -> list[str]:
        """The row's table cells, in COLUMNS order."""
        return [
            self.fault,
            f"{self.lines:,}",
            f"{self.score.missing:,}",
            f"{self.score.wrong:,}",
            f"{self.score.dead_letters_missing:,}",
            f"{self.duplicates:,}",
            self.recovery_text(),
        ]

    def to_json(self) -> dict[str, Any]:
        """The row as JSON: every column under its key, and the detail."""
        return {
            "fault": self.fault,
            "kind": self.kind,
            "lines": self.lines,
            "missing_decisions": self.score.missing,
            "wrong_decisions": self.score.wrong,
            "missing_dead_letters": self.score.dead_letters_missing,
            "duplicates": self.duplicates,
            "recovery_s": self.recovery_s,
            "ok": self.ok,
            "step_lines": self.step_lines,
            "expected_decisions": self.score.expected,
            "invalid_records": self.score.invalid,
            "dead_letters_of_valid_lines": self.score.dead_letters_wrong,
            "duplicates_same_source": self.replayed,
            "duplicates_so_far": self.score.duplicates,
            "revision_conflicts_so_far": self.score.conflicts,
            "revision_regressions_so_far": self.score.regressions,
            "worker_crashes": self.crashes,
            "struck_at": self.struck_at,
            "examples": list(self.score.examples),
            "notes": self.notes,
        }


def table(rows: list[Row], title: str | None = None) -> Table:
    """The scoreboard as a rich table (failed rows in red)."""
    board = Table(title=title)
    for i, (_, name) in enumerate(COLUMNS):
        board.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        board.add_row(*row.cells(), style=None if row.ok else "bold red")
    return board


def markdown(rows: list[Row]) -> str:
    """The scoreboard as a markdown table."""
    lines = [
        "| " + " | ".join(name for _, name in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def document(rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """What `--json` writes: the run's metadata, the columns, the rows, whether all passed."""
    return {
        **meta,
        "ok": bool(rows) and all(row.ok for row in rows) and not meta.get("error"),
        "columns": [{"key": key, "title": name} for key, name in COLUMNS],
        "rows": [row.to_json() for row in rows],
    }
