"""`stream-edits produce`: publish claim lines to the input topic."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from stream_edits.cli.errors import reported
from stream_edits.cli.input_format import add_input_format_arguments
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings


@dataclass(frozen=True)
class ProduceOptions:
    """What `produce` is asked."""

    file: str
    progress: bool = True
    input_format: str = "ndjson"
    received_at: str | None = None


def add_parser(sub: Subparsers) -> None:
    """The `produce` subcommand and its arguments."""
    produce = sub.add_parser("produce", help="publish claim lines to the input topic")
    produce.add_argument("file", help="file of claims in --format, or - for stdin")
    produce.add_argument("--no-progress", action="store_true")
    add_input_format_arguments(produce)
    produce.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> ProduceOptions:
    """The options of parsed arguments."""
    return ProduceOptions(
        file=args.file,
        progress=not args.no_progress,
        input_format=args.format,
        received_at=args.received_at,
    )


def run(settings: Settings, options: ProduceOptions) -> int:
    """Run `produce`: exit 0, 1 on a Kafka error, 2 when the file cannot be read."""
    from stream_edits.jobs import produce

    return reported(
        "produce",
        settings,
        lambda: produce.run(
            settings,
            options.file,
            progress=options.progress,
            input_format=options.input_format,
            received_at=options.received_at,
        ),
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`produce` from parsed arguments."""
    return run(settings, options(args))
