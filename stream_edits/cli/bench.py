"""`stream-edits bench`: the processor against its ceilings (`stream_edits_dev.bench`, imported
only when this command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

if TYPE_CHECKING:
    from stream_edits_dev.bench.options import BenchOptions


def add_parser(sub: Subparsers) -> None:
    """The `bench` subcommand and its arguments."""
    bench = sub.add_parser("bench", help="benchmark the processor against its ceilings")
    bench.add_argument("--lines", type=int, default=50_000, help="backlog lines")
    bench.add_argument("--rates", default="1000,5000", help="offered rates for latency runs")
    bench.add_argument("--latency-seconds", type=float, default=10.0)
    bench.add_argument(
        "--quiet-seconds", type=float, default=3.0, help="idle time before each paced run"
    )
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.add_argument("--seed", type=int, default=7, help="workload seed")
    bench.add_argument(
        "--pipelines", default="raw,faust,processor,unkeyed,two_workers", help="which to run"
    )
    bench.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also run the processor from this source tree (a checkout's root), in the same run",
    )
    bench.add_argument("--store", default=None, help="processor store (default: settings)")
    bench.add_argument(
        "--processor-env", action="append", metavar="NAME=VALUE", help="extra env (repeatable)"
    )
    bench.add_argument("--profile", default="", help="py-spy these pipelines while draining")
    bench.add_argument("--keep-topics", action="store_true", help="do not delete bench topics")
    bench.add_argument(
        "--cms-rules",
        type=Path,
        default=None,
        metavar="DIR",
        help="also measure this CMS-sized rules directory (`stream-edits rules generate DIR`): "
        "rules load at start, RSS/PSS/USS of one and two processes, check lines/s vs the default",
    )
    bench.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> BenchOptions:
    """The options of parsed arguments (the bench checks that they fit together)."""
    from stream_edits_dev.bench.options import BenchOptions

    return BenchOptions(
        lines=args.lines,
        rates=args.rates,
        latency_seconds=args.latency_seconds,
        quiet_seconds=args.quiet_seconds,
        out=args.out,
        seed=args.seed,
        pipelines=args.pipelines,
        baseline_src=args.baseline_src,
        store=args.store,
        processor_env=tuple(args.processor_env or ()),
        profile=args.profile,
        keep_topics=args.keep_topics,
        cms_rules=args.cms_rules,
    )


def run(settings: Settings, options: BenchOptions) -> int:
    """Run the bench: exit 0, 1 when no broker answers, 2 on options that do not fit."""
    from stream_edits_dev.bench import runner

    return reported("bench", settings, lambda: runner.run(settings, options))


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`bench` from parsed arguments."""
    return run(settings, options(args))
