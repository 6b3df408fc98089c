"""The `stream-edits` command line: one subcommand per job, each importing only what it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stream_edits.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.broker import local

    if args.action == "start":
        return local.start(settings, fresh=args.fresh)
    if args.action == "stop":
        return local.stop(settings)
    return local.status(settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.broker import admin

    return admin.create_topics_command(settings)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits import check

    return check.run(args.file, rules_dir=args.rules or settings.rules_dir, rejects=args.rejects)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits import worker

    return worker.run(settings, loglevel=args.loglevel)


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits import produce

    return produce.run(settings, args.file, progress=not args.no_progress)


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits import tail

    return tail.run(
        settings,
        as_json=args.json,
        from_beginning=args.from_beginning,
        idle_exit=args.idle_exit,
        limit=args.limit,
        dlq=args.dlq,
    )


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from stream_edits.bench import runner

    return runner.run(settings, args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stream-edits", description="Streaming claims-edit processor for health payers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local Apache Kafka broker (KRaft) from Maven jars")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--fresh", action="store_true", help="wipe the broker's data first")
    kafka.set_defaults(handler=_kafka)

    topics = sub.add_parser("topics", help="manage the project's topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(handler=_topics)

    check = sub.add_parser("check", help="decide NDJSON claim lines offline (no Kafka)")
    check.add_argument("file", help="NDJSON file of claim-line events, or - for stdin")
    check.add_argument("--rules", type=Path, default=None, help="rules directory")
    check.add_argument("--rejects", type=Path, default=None, help="write rejects here")
    check.set_defaults(handler=_check)

    worker = sub.add_parser("worker", help="run the Faust stream processor")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(handler=_worker)

    produce = sub.add_parser("produce", help="publish NDJSON claim lines to the input topic")
    produce.add_argument("file", help="NDJSON file, or - for stdin")
    produce.add_argument("--no-progress", action="store_true")
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

    bench = sub.add_parser("bench", help="benchmark the processor against its ceilings")
    bench.add_argument("--lines", type=int, default=50_000, help="backlog lines")
    bench.add_argument("--rates", default="1000,5000", help="offered rates for latency runs")
    bench.add_argument("--latency-seconds", type=float, default=10.0)
    bench.add_argument(
        "--quiet-seconds", type=float, default=3.0, help="idle time before each paced run"
    )
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.add_argument("--seed", type=int, default=7, help="workload seed")
    bench.add_argument("--pipelines", default="raw,faust,processor,unkeyed", help="which to run")
    bench.add_argument("--store", default=None, help="processor store (default: settings)")
    bench.add_argument(
        "--processor-env", action="append", metavar="NAME=VALUE", help="extra env (repeatable)"
    )
    bench.add_argument("--profile", default="", help="py-spy these pipelines while draining")
    bench.add_argument("--keep-topics", action="store_true", help="do not delete bench topics")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stream-edits` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, Settings())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
