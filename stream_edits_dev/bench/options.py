"""What `stream-edits bench` is asked (the command line fills it from its arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchOptions:
    """A bench run's options, as given: `runner.run` checks them."""

    lines: int = 50_000
    rates: str = "1000,5000"
    latency_seconds: float = 10.0
    quiet_seconds: float = 3.0
    out: Path = Path("bench-results")
    seed: int = 7
    pipelines: str = "raw,faust,processor,unkeyed,two_workers"
    baseline_src: Path | None = None
    store: str | None = None
    processor_env: tuple[str, ...] = ()
    profile: str = ""
    keep_topics: bool = False
    cms_rules: Path | None = None
