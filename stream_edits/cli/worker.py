"""`stream-edits worker`: run the Faust stream processor."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from stream_edits.cli.errors import ExitCodes, reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

# Topics that do not fit the worker (missing, refused, unreachable) are a 2: nothing ran.
EXIT_CODES = ExitCodes(usage=2, kafka=2)


@dataclass(frozen=True)
class WorkerOptions:
    """What `worker` is asked."""

    loglevel: str = "warning"


def add_parser(sub: Subparsers) -> None:
    """The `worker` subcommand and its arguments."""
    worker = sub.add_parser("worker", help="run the Faust stream processor")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> WorkerOptions:
    """The options of parsed arguments."""
    return WorkerOptions(loglevel=args.loglevel)


def run(settings: Settings, options: WorkerOptions) -> int:
    """Run a worker until it stops; exit 2 when the topics do not fit it."""
    from stream_edits.runtime import worker

    return reported(
        "worker",
        settings,
        lambda: worker.run(settings, loglevel=options.loglevel),
        codes=EXIT_CODES,
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`worker` from parsed arguments."""
    return run(settings, options(args))
