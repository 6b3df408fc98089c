"""The `stream-edits` command line: one module per command, each adding its arguments, parsing
them into a typed options object and calling a plain function of the library, which it imports
only when that command runs. Failures are worded in one place, `cli.errors`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stream_edits.cli import (
    bench,
    chaos,
    check,
    kafka,
    produce,
    reconcile,
    replay,
    rules,
    tail,
    topics,
    worker,
)
from stream_edits.cli.parsing import Handler
from stream_edits.log_safety import configure_logging
from stream_edits.settings import Settings

COMMANDS = (kafka, topics, check, worker, produce, tail, replay, reconcile, rules, bench, chaos)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stream-edits", description="Streaming claims-edit processor for health payers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stream-edits` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    handler: Handler = args.handler
    try:
        return handler(args, Settings())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
