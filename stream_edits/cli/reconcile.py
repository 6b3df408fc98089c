"""`stream-edits reconcile`: compare the latest decision per line of two topics or files."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from stream_edits.cli.errors import ExitCodes, reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

# 1 means "A and B differ": a failure is a 2, whatever its kind.
EXIT_CODES = ExitCodes(usage=2, kafka=2)


@dataclass(frozen=True)
class ReconcileOptions:
    """What `reconcile` is asked."""

    a: str
    b: str
    json_path: Path | None = None
    limit: int = 50


def add_parser(sub: Subparsers) -> None:
    """The `reconcile` subcommand and its arguments."""
    reconcile = sub.add_parser(
        "reconcile",
        help="compare the latest decision per line of two topics or NDJSON files",
        description="Compare the latest decision (highest revision) of every line in A and B. "
        "Two decisions agree when their status and edit codes (in order) are equal; revision, "
        "decided_at and source are not compared, since they depend on arrival order. Prints each "
        "difference (A's decision -> B's), the counts by kind of change and a summary. Exit 0 "
        "when A and B agree, 1 when they differ, 2 on a usage error or a source that cannot be "
        "read. What a rules change does: `replay --rules DIR --output-topic what-if`, then "
        "`reconcile claim-edits what-if`.",
    )
    reconcile.add_argument(
        "a",
        metavar="A",
        help="topic (read to its end when reconcile starts, no consumer group), or NDJSON file "
        "of decisions from `check` or `tail --json` (an existing path, or - for stdin)",
    )
    reconcile.add_argument("b", metavar="B", help="the same, for the other side")
    reconcile.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the report as JSON here"
    )
    reconcile.add_argument(
        "--limit",
        type=int,
        default=50,
        metavar="N",
        help="print at most N differences (default 50; counts stay complete)",
    )
    reconcile.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> ReconcileOptions:
    """The options of parsed arguments."""
    return ReconcileOptions(a=args.a, b=args.b, json_path=args.json, limit=args.limit)


def run(settings: Settings, options: ReconcileOptions) -> int:
    """Run `reconcile`: exit 0 when A and B agree, 1 when they differ, 2 on a usage error or a
    source that cannot be read."""
    from stream_edits.jobs import reconcile

    return reported(
        "reconcile",
        settings,
        lambda: reconcile.run(
            settings, options.a, options.b, json_path=options.json_path, limit=options.limit
        ),
        codes=EXIT_CODES,
        kafka_prefix="kafka: ",
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`reconcile` from parsed arguments."""
    return run(settings, options(args))
