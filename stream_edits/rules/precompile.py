"""Compiling a rules directory ahead of workers (`stream-edits rules compile`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from stream_edits.rules.compiled import CompiledIndex
from stream_edits.rules.loader import load_rules


@dataclass(frozen=True)
class Precompiled:
    """A rules directory validated and its compiled cache filled."""

    version: str
    row_counts: dict[str, int]  # by table kind; empty when the rules are not compiled
    seconds: float

    def summary(self) -> str:
        """One line: the version, the rows by kind and how long it took."""
        rows = ", ".join(f"{n:,} {kind.upper()}" for kind, n in self.row_counts.items())
        return f"rules {self.version}: {rows} rows, ready in {self.seconds:.1f} s"


def precompile(directory: Path | None, cache_dir: Path) -> Precompiled:
    """Validate every row of `directory` (None: the shipped rules) and fill the compiled cache in
    `cache_dir`; RulesError naming the first bad row."""
    started = time.perf_counter()
    rules = load_rules(directory, cache_dir=cache_dir)
    took = time.perf_counter() - started
    index = rules.index
    counts = index.row_counts() if isinstance(index, CompiledIndex) else {}
    return Precompiled(rules.version, dict(counts), took)
