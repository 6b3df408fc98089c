"""The options of `stream-edits chaos`, checked (the command line fills them from its arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream_edits.refusal import Refused
from stream_edits.settings import Settings
from stream_edits_dev.chaos.plan import KINDS, fault_order, parse_kinds

DEFAULT_LINES = 50_000
DEFAULT_SEED = 11
DEFAULT_KILLS = 5
DEFAULT_WORKERS = 2
MAX_WORKERS = 6
DEFAULT_RATE = 2_500.0
DEFAULT_TIME_LIMIT_S = 900.0
DEFAULT_SETTLE_TIMEOUT_S = 150.0
MIN_LINES_PER_STEP = 50


@dataclass(frozen=True)
class Config:
    """A run's options, checked."""

    lines: int
    seed: int
    partitions: int
    kinds: list[str]
    kills: int
    workers: int
    rate: float
    time_limit_s: float
    settle_timeout_s: float
    json: Path | None
    markdown: Path | None
    workdir: Path | None
    keep: bool

    @classmethod
    def checked(
        cls,
        settings: Settings,
        *,
        lines: int = DEFAULT_LINES,
        seed: int = DEFAULT_SEED,
        partitions: int | None = None,
        faults: str = ",".join(KINDS),
        kills: int = DEFAULT_KILLS,
        workers: int = DEFAULT_WORKERS,
        rate: float = DEFAULT_RATE,
        time_limit: float = DEFAULT_TIME_LIMIT_S,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT_S,
        json: Path | None = None,
        markdown: Path | None = None,
        workdir: Path | None = None,
        keep: bool = False,
    ) -> Config:
        """The config of these options (partitions default to `settings`'); Refused naming the
        option that is wrong."""
        try:
            kinds = parse_kinds(faults)
        except ValueError as error:
            raise Refused(str(error)) from error
        partitions = settings.partitions if partitions is None else partitions
        if partitions < 1:
            raise Refused("--partitions must be at least 1")
        if not 2 <= workers <= MAX_WORKERS:
            raise Refused(f"--workers must be 2 to {MAX_WORKERS}")
        if "join-leave" in kinds and partitions < workers:
            raise Refused(f"{workers} workers need --partitions {workers} or more")
        if kills < 0:
            raise Refused("--kills must be 0 or more")
        if rate <= 0 or time_limit <= 0 or settle_timeout <= 0:
            raise Refused("--rate, --time-limit and --settle-timeout must be positive")
        steps = len(fault_order(kinds, kills))
        if lines < steps * MIN_LINES_PER_STEP:
            raise Refused(
                f"--lines must be at least {steps * MIN_LINES_PER_STEP} for {steps} steps"
            )
        return cls(
            lines=lines,
            seed=seed,
            partitions=partitions,
            kinds=kinds,
            kills=kills,
            workers=workers,
            rate=rate,
            time_limit_s=time_limit,
            settle_timeout_s=settle_timeout,
            json=json,
            markdown=markdown,
            workdir=workdir,
            keep=keep,
        )
