"""`stream-edits tail`: print decisions (or dead letters) as they arrive."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings


@dataclass(frozen=True)
class TailOptions:
    """What `tail` is asked."""

    as_json: bool = False
    dlq: bool = False
    from_beginning: bool = False
    idle_exit: float | None = None
    limit: int | None = None


def add_parser(sub: Subparsers) -> None:
    """The `tail` subcommand and its arguments."""
    tail = sub.add_parser("tail", help="print decisions from the output topic as they arrive")
    tail.add_argument("--json", action="store_true", help="print JSON (decisions as published)")
    tail.add_argument(
        "--dlq", action="store_true", help="dead letters instead: where, why, which fields"
    )
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--idle-exit", type=float, default=None, help="exit after N idle seconds")
    tail.add_argument("--limit", type=int, default=None, help="exit after N decisions")
    tail.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> TailOptions:
    """The options of parsed arguments."""
    return TailOptions(
        as_json=args.json,
        dlq=args.dlq,
        from_beginning=args.from_beginning,
        idle_exit=args.idle_exit,
        limit=args.limit,
    )


def run(settings: Settings, options: TailOptions) -> int:
    """Run `tail`: exit 0 (also on Ctrl-C), 1 on a Kafka error."""
    from stream_edits.jobs import tail

    return reported(
        "tail",
        settings,
        lambda: tail.run(
            settings,
            as_json=options.as_json,
            from_beginning=options.from_beginning,
            idle_exit=options.idle_exit,
            limit=options.limit,
            dlq=options.dlq,
        ),
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`tail` from parsed arguments."""
    return run(settings, options(args))
