"""`stream-edits check`: decide claim lines offline (no Kafka)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from stream_edits.cli.errors import reported
from stream_edits.cli.input_format import add_input_format_arguments
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings


@dataclass(frozen=True)
class CheckOptions:
    """What `check` is asked."""

    file: str
    rules: Path | None = None
    rejects: Path | None = None
    input_format: str = "ndjson"
    received_at: str | None = None


def add_parser(sub: Subparsers) -> None:
    """The `check` subcommand and its arguments."""
    check = sub.add_parser("check", help="decide claim lines offline (no Kafka)")
    check.add_argument("file", help="file of claims in --format, or - for stdin")
    check.add_argument("--rules", type=Path, default=None, help="rules directory")
    check.add_argument("--rejects", type=Path, default=None, help="write rejects here")
    add_input_format_arguments(check)
    check.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> CheckOptions:
    """The options of parsed arguments."""
    return CheckOptions(
        file=args.file,
        rules=args.rules,
        rejects=args.rejects,
        input_format=args.format,
        received_at=args.received_at,
    )


def run(settings: Settings, options: CheckOptions) -> int:
    """Run `check`; its exit code (failures reported on stderr)."""
    from stream_edits.jobs import check

    return reported(
        "check",
        settings,
        lambda: check.run(
            options.file,
            rules_dir=options.rules or settings.rules_dir,
            rejects=options.rejects,
            input_format=options.input_format,
            received_at=options.received_at,
            dependents=settings.dependent_identity,
        ),
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`check` from parsed arguments."""
    return run(settings, options(args))
