"""`stream-edits chaos`: the fault suite against a broker of its own (`stream_edits_dev.chaos`,
imported only when this command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

if TYPE_CHECKING:
    from stream_edits_dev.chaos.options import Config


def add_parser(sub: Subparsers) -> None:
    """The `chaos` subcommand and its arguments."""
    from stream_edits_dev.chaos import options as chaos
    from stream_edits_dev.chaos.plan import KINDS

    parser = sub.add_parser(
        "chaos",
        help="fault suite against a broker of its own: kills, rebalances, restores, poison",
        description="Produce the synthetic workload with poison records through several "
        "producers into a broker of its own while faults strike (kill -9 of workers and of the "
        "broker, a second worker joining and leaving, local state deleted or stale from an "
        "earlier broker, a poison burst); after each, compare the latest decision of every line "
        "with `stream-edits check` on the same input and require a dead letter for every invalid "
        "record. Prints a scoreboard; exit 1 when any row has missing or wrong decisions.",
    )
    lines = chaos.DEFAULT_LINES
    parser.add_argument("--lines", type=int, default=lines, help=f"workload lines ({lines:,})")
    parser.add_argument(
        "--seed", type=int, default=chaos.DEFAULT_SEED, help="workload and fault seed"
    )
    parser.add_argument(
        "--partitions", type=int, default=None, help="input partitions (default: settings, 4)"
    )
    parser.add_argument(
        "--faults",
        default=",".join(KINDS),
        help=f"fault kinds to run (default all: {','.join(KINDS)})",
    )
    parser.add_argument(
        "--kills", type=int, default=chaos.DEFAULT_KILLS, help="worker kill -9 moments (default 5)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=chaos.DEFAULT_WORKERS,
        help="workers while the others join (default 2: a second one joins and leaves)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=chaos.DEFAULT_RATE,
        help="records a second offered by the producers together "
        f"(default {chaos.DEFAULT_RATE:,.0f})",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=chaos.DEFAULT_TIME_LIMIT_S,
        metavar="SECONDS",
        help="hard bound on the whole run; steps not run by then fail it (default 900)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=chaos.DEFAULT_SETTLE_TIMEOUT_S,
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
    parser.set_defaults(handler=handle)


def options(args: argparse.Namespace, settings: Settings) -> Config:
    """The checked config of parsed arguments; Refused naming the option that is wrong."""
    from stream_edits_dev.chaos.options import Config

    return Config.checked(
        settings,
        lines=args.lines,
        seed=args.seed,
        partitions=args.partitions,
        faults=args.faults,
        kills=args.kills,
        workers=args.workers,
        rate=args.rate,
        time_limit=args.time_limit,
        settle_timeout=args.settle_timeout,
        json=args.json,
        markdown=args.markdown,
        workdir=args.workdir,
        keep=args.keep,
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`chaos` from parsed arguments: exit 0 when every row passes, 1 when not, 2 on options
    that cannot run."""
    from stream_edits_dev.chaos import runner

    return reported("chaos", settings, lambda: runner.run(settings, options(args, settings)))
