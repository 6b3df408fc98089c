"""The options of `stream-edits chaos` (argparse only: the CLI imports this to build its parser)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the chaos subcommand."""
    parser.add_argument(
        "--lines", type=int, default=DEFAULT_LINES, help=f"workload lines ({DEFAULT_LINES:,})"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="workload and fault seed")
    parser.add_argument(
        "--partitions", type=int, default=None, help="input partitions (default: settings, 4)"
    )
    parser.add_argument(
        "--faults",
        default=",".join(KINDS),
        help=f"fault kinds to run (default all: {','.join(KINDS)})",
    )
    parser.add_argument(
        "--kills", type=int, default=DEFAULT_KILLS, help="worker kill -9 moments (default 5)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="workers while the others join (default 2: a second one joins and leaves)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"records a second offered by the producers together (default {DEFAULT_RATE:,.0f})",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="SECONDS",
        help="hard bound on the whole run; steps not run by then fail it (default 900)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=DEFAULT_SETTLE_TIMEOUT_S,
        metavar="SECONDS",
        help="how long a fault may take to recover before its row fails (default 150)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    parser.add_argument(
        "--markdown", type=Path, default=None, metavar="PATH", help="write a markdown table here"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the run's broker data, worker state and logs (default: a temp dir); kept",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (broker data, state, logs) also when every row passes",
    )


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
    def from_args(cls, args: argparse.Namespace, settings: Settings) -> Config:
        """The config of these arguments; ValueError naming what is wrong."""
        kinds = parse_kinds(args.faults)
        partitions = settings.partitions if args.partitions is None else args.partitions
        if partitions < 1:
            raise ValueError("--partitions must be at least 1")
        if not 2 <= args.workers <= MAX_WORKERS:
            raise ValueError(f"--workers must be 2 to {MAX_WORKERS}")
        if "join-leave" in kinds and partitions < args.workers:
            raise ValueError(f"{args.workers} workers need --partitions {args.workers} or more")
        if args.kills < 0:
            raise ValueError("--kills must be 0 or more")
        if args.rate <= 0 or args.time_limit <= 0 or args.settle_timeout <= 0:
            raise ValueError("--rate, --time-limit and --settle-timeout must be positive")
        steps = len(fault_order(kinds, args.kills))
        if args.lines < steps * MIN_LINES_PER_STEP:
            raise ValueError(
                f"--lines must be at least {steps * MIN_LINES_PER_STEP} for {steps} steps"
            )
        return cls(
            lines=args.lines,
            seed=args.seed,
            partitions=partitions,
            kinds=kinds,
            kills=args.kills,
            workers=args.workers,
            rate=args.rate,
            time_limit_s=args.time_limit,
            settle_timeout_s=args.settle_timeout,
            json=args.json,
            markdown=args.markdown,
            workdir=args.workdir,
            keep=args.keep,
        )
