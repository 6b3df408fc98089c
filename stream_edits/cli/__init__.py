"""The `stream-edits` command line: one subcommand per job, each importing only what it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stream_edits.log_safety import configure_logging
from stream_edits.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits_dev.broker import local

    if args.action == "start":
        return local.start(settings, fresh=args.fresh, security=args.security)
    if args.action == "stop":
        return local.stop(settings)
    if args.action == "users":
        from stream_edits_dev.broker import security

        return security.users_command(settings, args.users_action, args.name)
    if args.action == "acls":
        from stream_edits.kafka import acls

        return acls.acls_command(settings, args)
    return local.status(settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.kafka import admin

    return admin.create_topics_command(settings)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.jobs import check

    return check.run(
        args.file,
        rules_dir=args.rules or settings.rules_dir,
        rejects=args.rejects,
        input_format=args.format,
        received_at=args.received_at,
        dependents=settings.dependent_identity,
    )


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.runtime import worker

    return worker.run(settings, loglevel=args.loglevel)


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.jobs import produce

    return produce.run(
        settings,
        args.file,
        progress=not args.no_progress,
        input_format=args.format,
        received_at=args.received_at,
    )


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.jobs import tail

    return tail.run(
        settings,
        as_json=args.json,
        from_beginning=args.from_beginning,
        idle_exit=args.idle_exit,
        limit=args.limit,
        dlq=args.dlq,
    )


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.runtime import replay

    return replay.run(settings, args)


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.jobs import reconcile

    return reconcile.run(settings, args.a, args.b, json_path=args.json, limit=args.limit)


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.rules import command

    return command.run(args, settings.rules_dir, settings.rules_cache_dir)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits_dev.bench import runner

    return runner.run(settings, args)


def _chaos(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits_dev.chaos import runner

    return runner.run(settings, args)


def _kafka_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    acls.add_argument(
        "--role", required=True, choices=["worker", "producer", "reader", "replay", "admin"]
    )
    acls.add_argument("--principal", required=True, help="TYPE:NAME, e.g. User:alice")
    acls.add_argument("--group", default=None, help="reader: a consumer group of its own")
    acls.add_argument("--output-topic", default=None, help="replay: its output topic")
    acls.add_argument(
        "--prefixed", action="store_true", help="replay: any output topic starting with it"
    )
    acls.add_argument("--dry-run", action="store_true", help="print the ACLs, set nothing")


def _input_format_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format",
        choices=["ndjson", "x12-837p", "fhir-claim"],
        default="ndjson",
        help="ndjson: claim-line events (default); x12-837p: an X12 837P 005010X222A1 "
        "interchange; fhir-claim: a FHIR R4 Claim, a Bundle of them, or NDJSON of either",
    )
    command.add_argument(
        "--received-at",
        default=None,
        metavar="TIME",
        help="x12-837p, fhir-claim: received_at of every claim (ISO 8601 with a zone) instead of "
        "the transaction's BHT time (as UTC) or the Claim's created",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stream-edits", description="Streaming claims-edit processor for health payers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local Apache Kafka broker (KRaft) from Maven jars")
    kafka.set_defaults(handler=_kafka)
    _kafka_actions(kafka.add_subparsers(dest="action", required=True))

    topics = sub.add_parser("topics", help="manage the project's topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(handler=_topics)

    check = sub.add_parser("check", help="decide claim lines offline (no Kafka)")
    check.add_argument("file", help="file of claims in --format, or - for stdin")
    check.add_argument("--rules", type=Path, default=None, help="rules directory")
    check.add_argument("--rejects", type=Path, default=None, help="write rejects here")
    _input_format_arguments(check)
    check.set_defaults(handler=_check)

    worker = sub.add_parser("worker", help="run the Faust stream processor")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(handler=_worker)

    produce = sub.add_parser("produce", help="publish claim lines to the input topic")
    produce.add_argument("file", help="file of claims in --format, or - for stdin")
    produce.add_argument("--no-progress", action="store_true")
    _input_format_arguments(produce)
    produce.set_defaults(handler=_produce)

    tail = sub.add_parser("tail", help="print decisions from the output topic as they arrive")
    tail.add_argument("--json", action="store_true", help="print JSON (decisions as published)")
    tail.add_argument(
        "--dlq", action="store_true", help="dead letters instead: where, why, which fields"
    )
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--idle-exit", type=float, default=None, help="exit after N idle seconds")
    tail.add_argument("--limit", type=int, default=None, help="exit after N decisions")
    tail.set_defaults(handler=_tail)

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
    replay.set_defaults(handler=_replay)

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
    reconcile.set_defaults(handler=_reconcile)

    rules = sub.add_parser("rules", help="compile a rules directory, or generate a CMS-sized one")
    rules.set_defaults(handler=_rules)
    from stream_edits.rules.command import add_arguments as rules_arguments

    rules_arguments(rules.add_subparsers(dest="action", required=True))

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
    bench.set_defaults(handler=_bench)

    from stream_edits_dev.chaos.options import add_arguments as chaos_arguments

    chaos = sub.add_parser(
        "chaos",
        help="fault suite against a broker of its own: kills, rebalances, restores, poison",
        description="Produce the synthetic workload with poison records through several "
        "producers into a broker of its own while faults strike (kill -9 of workers and of the "
        "broker, a second worker joining and leaving, local state deleted or stale from an "
        "earlier broker, a poison burst); after each, compare the latest decision of every line "
        "with `stream-edits check` on the same input and require a dead letter for every invalid "
        "record. Prints a scoreboard; exit 1 when any row has missing or wrong decisions.",
    )
    chaos_arguments(chaos)
    chaos.set_defaults(handler=_chaos)
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
