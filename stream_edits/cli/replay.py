"""`stream-edits replay`: reprocess history into a separate output topic."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

if TYPE_CHECKING:
    from stream_edits.runtime.replay import ReplayOptions


def add_parser(sub: Subparsers) -> None:
    """The `replay` subcommand and its arguments."""
    replay = sub.add_parser(
        "replay",
        help="reprocess claim-lines (or a topic, or NDJSON archives) into a separate topic",
        description="Replay history through the processor into its own output topic (and "
        "<output>-dlq), with its own local state and no consumer group: the live worker and its "
        "output are untouched. Stops by itself at --until.",
    )
    replay.add_argument("--output-topic", required=True, help="where the decisions go")
    source = replay.add_mutually_exclusive_group()
    source.add_argument("--source", default=None, help="topic to read (default: claim-lines)")
    source.add_argument("--file", nargs="+", default=None, help="NDJSON archives, in order")
    replay.add_argument(
        "--from",
        dest="start",
        default="earliest",
        help="earliest | ISO-8601 timestamp | PARTITION:OFFSET,... (decisions of records from "
        "here on are published; state is rebuilt from HORIZON_DAYS before)",
    )
    replay.add_argument(
        "--until", default="end", help="end (the end when it starts) | ISO-8601 timestamp"
    )
    replay.add_argument("--rules", type=Path, default=None, help="rules directory (what-if)")
    replay.add_argument("--keep", action="store_true", help="keep the local state")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> ReplayOptions:
    """The options of parsed arguments."""
    from stream_edits.runtime.replay import ReplayOptions

    return ReplayOptions(
        output_topic=args.output_topic,
        source=args.source,
        files=tuple(Path(f) for f in args.file or ()),
        start=args.start,
        until=args.until,
        rules=args.rules,
        keep=args.keep,
        json=args.json,
        progress=not args.no_progress,
    )


def run(settings: Settings, options: ReplayOptions) -> int:
    """Run `replay`: exit 0 when done, 2 on a usage error or bad rules, 1 on a Kafka error."""
    from stream_edits.runtime import replay

    return reported("replay", settings, lambda: replay.run(settings, options))


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`replay` from parsed arguments."""
    return run(settings, options(args))
