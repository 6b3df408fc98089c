"""`stream-edits kafka start | stop | status | users | acls`: the local development broker (from
`stream_edits_dev`, imported only when this command runs)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from stream_edits.cli.errors import ExitCodes, reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings

if TYPE_CHECKING:
    from stream_edits.kafka.acls import AclRequest

# users and acls exit 1 on any failure, as `kafka start` does.
EXIT_CODES = ExitCodes(usage=1, kafka=1)
ROLES = ["worker", "producer", "reader", "replay", "admin"]


@dataclass(frozen=True)
class BrokerOptions:
    """What `kafka start | stop | status` is asked."""

    action: Literal["start", "stop", "status"]
    fresh: bool = False
    security: Literal["plaintext", "sasl_ssl"] | None = None


@dataclass(frozen=True)
class UsersOptions:
    """What `kafka users add NAME | list` is asked."""

    action: Literal["add", "list"]
    name: str | None = None


def add_parser(sub: Subparsers) -> None:
    """The `kafka` subcommand and its actions."""
    kafka = sub.add_parser("kafka", help="run a local Apache Kafka broker (KRaft) from Maven jars")
    kafka.set_defaults(handler=handle)
    actions = kafka.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="start the local broker (if not running)")
    start.add_argument("--fresh", action="store_true", help="wipe the broker's data first")
    start.add_argument(
        "--security",
        choices=["plaintext", "sasl_ssl"],
        default=None,
        help="plaintext (a new data dir's default), or sasl_ssl: TLS with a CA of its own, "
        "SCRAM-SHA-512 users, ACLs enforced; an existing data dir keeps its mode (--fresh to "
        "change it)",
    )
    actions.add_parser("stop", help="stop the local broker")
    actions.add_parser("status", help="exit 0 when the local broker runs, 3 when not")
    users = actions.add_parser(
        "users",
        help="SCRAM users of a sasl_ssl local broker",
        description="add NAME: create SCRAM-SHA-512 user NAME with a new random password and "
        "write its STREAM_EDITS_* settings to <data dir>/security/users/NAME.env (0600); "
        "list: the users with settings files.",
    )
    users.add_argument("users_action", choices=["add", "list"])
    users.add_argument("name", nargs="?", default=None, help="user name (for add)")
    acls = actions.add_parser(
        "acls",
        help="grant a principal the least ACLs of a role on the local sasl_ssl broker",
        description="Create the ACLs ROLE needs (topic names and app id from the settings) for "
        "PRINCIPAL on the local broker, as its admin, and print them. --dry-run prints them "
        "only, e.g. to set them on another cluster with kafka-acls.",
    )
    acls.add_argument("--role", required=True, choices=ROLES)
    acls.add_argument("--principal", required=True, help="TYPE:NAME, e.g. User:alice")
    acls.add_argument("--group", default=None, help="reader: a consumer group of its own")
    acls.add_argument("--output-topic", default=None, help="replay: its output topic")
    acls.add_argument(
        "--prefixed", action="store_true", help="replay: any output topic starting with it"
    )
    acls.add_argument("--dry-run", action="store_true", help="print the ACLs, set nothing")


def options(args: argparse.Namespace) -> BrokerOptions | UsersOptions | AclRequest:
    """The options of parsed arguments, by action."""
    if args.action == "users":
        return UsersOptions(action=args.users_action, name=args.name)
    if args.action == "acls":
        from stream_edits.kafka.acls import AclRequest

        return AclRequest(
            role=args.role,
            principal=args.principal,
            group=args.group,
            output_topic=args.output_topic,
            prefixed=args.prefixed,
            dry_run=args.dry_run,
        )
    return BrokerOptions(
        action=args.action,
        fresh=getattr(args, "fresh", False),
        security=getattr(args, "security", None),
    )


def broker(settings: Settings, options: BrokerOptions) -> int:
    """`kafka start | stop | status`: the local broker's exit codes (status: 3 when not running)."""
    from stream_edits_dev.broker import local

    if options.action == "start":
        return local.start(settings, fresh=options.fresh, security=options.security)
    if options.action == "stop":
        return local.stop(settings)
    return local.status(settings)


def users(settings: Settings, options: UsersOptions) -> int:
    """`kafka users add NAME | list`: exit 0, or 1 with one line on stderr."""
    from stream_edits_dev.broker import security

    return reported(
        "kafka users",
        settings,
        lambda: security.users_command(settings, options.action, options.name),
        codes=EXIT_CODES,
        kafka_settings=lambda: security.admin_settings(settings),
    )


def acls(settings: Settings, request: AclRequest) -> int:
    """`kafka acls`: exit 0, or 1 with one line on stderr."""
    from stream_edits.kafka import acls
    from stream_edits_dev.broker import security

    return reported(
        "kafka acls",
        settings,
        lambda: acls.acls_command(settings, request, lambda: security.admin_settings(settings)),
        codes=EXIT_CODES,
        kafka_settings=lambda: security.admin_settings(settings),
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`kafka` from parsed arguments."""
    chosen = options(args)
    if isinstance(chosen, UsersOptions):
        return users(settings, chosen)
    if isinstance(chosen, BrokerOptions):
        return broker(settings, chosen)
    return acls(settings, chosen)
