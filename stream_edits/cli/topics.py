"""`stream-edits topics create`: create the project's topics."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings


@dataclass(frozen=True)
class TopicsOptions:
    """What `topics` is asked (create is its one action)."""

    action: Literal["create"] = "create"


def add_parser(sub: Subparsers) -> None:
    """The `topics` subcommand and its arguments."""
    topics = sub.add_parser("topics", help="manage the project's topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(handler=handle)


def options(args: argparse.Namespace) -> TopicsOptions:
    """The options of parsed arguments."""
    return TopicsOptions(action=args.action)


def run(settings: Settings, options: TopicsOptions) -> int:
    """Run `topics create`: exit 0, 1 on a Kafka error."""
    from stream_edits.kafka import admin

    return reported("topics", settings, lambda: admin.create_topics_command(settings))


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`topics` from parsed arguments."""
    return run(settings, options(args))
