"""`stream-edits replay`: reprocess historical claim lines into a separate output topic.

A replay runs the stream processor (`runtime/processor.py`: the same per-line rule, dead letters
and checkpoints) over a bounded range of `claim-lines` (or another topic, or NDJSON archives) and
stops by itself. It touches nothing of the live worker's: no consumer group (it assigns every
partition and commits nothing), no internal topics, its own local state in a directory of its
own (removed when done unless `--keep`), its own output topic and `<output>-dlq`. As one process
it owns every partition's state, so lines are applied where they are read (no repartition hop),
and their decisions go to their member's partition as the live worker's do.

The published window: a line's decision depends on the earlier lines of its patient-day, which
may lie before `--from`. A replay `--from T` therefore starts reading `horizon_days` before T
(the state horizon) and publishes only what the records from T on cause.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from stream_edits.kafka.admin import create_topics, require_topic
from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.log_safety import configure_logging
from stream_edits.refusal import Refused
from stream_edits.rules.loader import load_rules
from stream_edits.runtime.processor import Processor, ProcessorConfig, Topics
from stream_edits.runtime.state.tables import LocalMemberTable
from stream_edits.settings import Settings, default_home

POLL_MS = 500


class ReplayError(Refused):
    """A replay that cannot run as asked; the message says why."""


@dataclass(frozen=True)
class ReplayOptions:
    """What a replay is asked: where its decisions go, what it reads and from when to when."""

    output_topic: str
    source: str | None = None
    files: tuple[Path, ...] = ()
    start: str = "earliest"
    until: str = "end"
    rules: Path | None = None
    keep: bool = False
    json: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Plan:
    """What a replay reads: per partition, where reading starts, where publishing starts and
    where it ends (exclusive)."""

    read_from: dict[int, int]
    publish_from: dict[int, int]
    until: dict[int, int]

    def to_read(self, partition: int) -> int:
        """Records to read from `partition`."""
        return max(0, self.until[partition] - self.read_from[partition])

    @property
    def total(self) -> int:
        """Records to read."""
        return sum(self.to_read(p) for p in self.until)


@dataclass(slots=True)
class FileRecord:
    """A line of an NDJSON archive, shaped as a consumed record."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Summary:
    """What a replay did: the printed and `--json` report."""

    source: str
    output_topic: str | None
    lines_read: int = 0
    published_window: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        stats = self.stats
        return {
            "source": self.source,
            "output_topic": self.output_topic,
            "lines_read": self.lines_read,
            "lines_per_s": round(self.lines_read / self.elapsed_s, 1) if self.elapsed_s else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "published_from": self.published_window,
            "decisions": stats.get("decisions", 0),
            "decisions_by_status": stats.get("decisions_by_status", {}),
            "decisions_by_edit": stats.get("decisions_by_edit", {}),
            "dead_letters": stats.get("dead_letters", 0),
            "dead_letters_by_reason": stats.get("dead_letters_by_reason", {}),
        }


def parse_start(text: str) -> str | datetime | dict[int, int]:
    """`earliest`, an ISO-8601 timestamp (with a zone), or `PARTITION:OFFSET,...`."""
    if text == "earliest":
        return text
    if ":" in text and all(part.count(":") == 1 and "-" not in part for part in text.split(",")):
        try:
            return {int(p): int(o) for p, o in (part.split(":") for part in text.split(","))}
        except ValueError as error:
            raise ReplayError(f"--from {text}: PARTITION:OFFSET wants integers") from error
    return parse_time(text, "--from")


def parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 timestamp with a zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ReplayError(f"{option} {text}: not an ISO-8601 timestamp") from error
    if moment.tzinfo is None:
        raise ReplayError(f"{option} {text}: give a zone (e.g. 2025-06-01T00:00:00Z)")
    return moment


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def plan(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    start: str | datetime | dict[int, int],
    until: str | datetime,
    horizon_days: int,
) -> Plan:
    """Offsets per partition for the start, the window and the end (captured now)."""
    first = {tp.partition: o for tp, o in (await consumer.beginning_offsets(partitions)).items()}
    end = {tp.partition: o for tp, o in (await consumer.end_offsets(partitions)).items()}

    async def at(moment: datetime) -> dict[int, int]:
        found = await consumer.offsets_for_times({tp: _ms(moment) for tp in partitions})
        return {
            tp.partition: end[tp.partition] if hit is None else hit.offset
            for tp, hit in found.items()
        }

    stop = end if until == "end" else await at(until)  # type: ignore[arg-type]
    if isinstance(start, datetime):
        window = await at(start)
        read_from = await at(start - timedelta(days=horizon_days))
    elif not isinstance(start, dict):  # earliest
        window = dict(first)
        read_from = dict(first)
    else:
        unknown = set(start) - set(end)
        if unknown:
            raise ReplayError(f"--from names partitions the topic lacks: {sorted(unknown)}")
        window = {p: start.get(p, first[p]) for p in end}
        read_from = dict(first)  # the state horizon of an offset is not known: all history
    read_from = {p: max(first[p], read_from[p]) for p in end}
    return Plan(read_from, window, stop)


class Replay:
    """One replay run: a consumer over the source, the processor, a producer to the output."""

    def __init__(
        self,
        settings: Settings,
        output_topic: str,
        rules_dir: Path | None,
        state_dir: Path,
        progress: bool,
    ) -> None:
        self.settings = settings.model_copy(
            update={"output_topic": output_topic, "dlq_topic": f"{output_topic}-dlq"}
        )
        self.rules = load_rules(rules_dir or settings.rules_dir)
        self.state_dir = state_dir
        self.table = LocalMemberTable(state_dir / "members")
        self.show_progress = progress
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        """The output's producer (made on first use, inside the event loop)."""
        if self._producer is None:
            s = self.settings
            self._producer = AIOKafkaProducer(
                **kafka_client_kwargs(s),
                linger_ms=0,
                max_batch_size=s.producer_batch_bytes,
                max_request_size=s.producer_max_request_bytes,
                acks="all",
            )
        return self._producer

    def _processor(self, partitions: int, publish_from: dict[int, int] | None) -> Processor:
        s = self.settings

        async def producer() -> AIOKafkaProducer:
            return self.producer

        return Processor(
            rules=self.rules,
            members=self.table,
            producer=producer,
            config=ProcessorConfig(
                topics=Topics(
                    repartition="",  # never written: every line is applied where it is read
                    output=s.output_topic,
                    dlq=s.dlq_topic,
                    app_id=f"replay-{self.state_dir.name}",
                ),
                partitions=partitions,
                horizon_days=s.horizon_days,
                member_state_max_bytes=s.member_state_max_bytes,
                forward=False,
                publish_from=publish_from,
            ),
        )

    async def from_topic(
        self, start: str | datetime | dict[int, int], until: str | datetime
    ) -> Summary:
        """Replay the settings' input topic into the output topic."""
        s = self.settings
        count = await require_topic(s, s.input_topic, "Read")
        await create_topics(s.model_copy(update={"partitions": count}))
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(s),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a reset racing a seek never skips history
            # What the live worker reads: Faust reads committed records only under exactly_once.
            isolation_level="read_committed"
            if s.processing_guarantee == "exactly_once"
            else "read_uncommitted",
            max_partition_fetch_bytes=s.dlq_max_message_bytes,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        await self.producer.start()
        try:
            partitions = [TopicPartition(s.input_topic, p) for p in range(count)]
            consumer.assign(partitions)
            bounds = await plan(consumer, partitions, start, until, s.horizon_days)
            for tp in partitions:
                consumer.seek(tp, bounds.read_from[tp.partition])
            processor = self._processor(count, bounds.publish_from)
            summary = Summary(s.input_topic, s.output_topic)
            summary.published_window = {str(p): o for p, o in sorted(bounds.publish_from.items())}
            began = time.perf_counter()
            summary.lines_read = await self._drain(consumer, processor, bounds)
            summary.elapsed_s = time.perf_counter() - began
            summary.stats = processor.stats.as_dict()
            return summary
        finally:
            await consumer.stop()
            await self.producer.stop()
            self.table.close()

    async def _drain(self, consumer: AIOKafkaConsumer, processor: Processor, bounds: Plan) -> int:
        left = {p: end for p, end in bounds.until.items() if bounds.to_read(p)}
        read = 0
        with _progress(self.show_progress, bounds) as bars:
            while left:
                fetched = await consumer.getmany(
                    *[TopicPartition(self.settings.input_topic, p) for p in left],
                    timeout_ms=POLL_MS,
                    max_records=self.settings.batch_max,
                )
                batch: list[Any] = []
                next_offsets = {}
                for tp, records in fetched.items():
                    taken = [r for r in records if r.offset < left.get(tp.partition, -1)]
                    batch.extend(taken)
                    if taken:
                        next_offsets[tp] = taken[-1].offset + 1
                        bars.advance(tp.partition, len(taken))
                if batch:
                    await processor.process_batch(batch, next_offsets)
                    read += len(batch)
                # Done with a partition once its position passes the end captured at the start
                # (offsets may skip: transaction markers, compaction).
                for p, end in list(left.items()):
                    tp = TopicPartition(self.settings.input_topic, p)
                    if next_offsets.get(tp, 0) >= end or await consumer.position(tp) >= end:
                        del left[p]
            await processor.settle()
        return read

    async def from_files(self, paths: Sequence[Path]) -> Summary:
        """Replay NDJSON archives (in the order given) into the output topic."""
        s = self.settings
        await create_topics(s)
        await self.producer.start()
        try:
            processor = self._processor(s.partitions, None)
            summary = Summary(",".join(str(p) for p in paths), s.output_topic)
            began = time.perf_counter()
            batch: list[Any] = []
            for path in paths:
                with path.open("rb") as handle:
                    for number, line in enumerate(handle):
                        if not line.strip():
                            continue
                        batch.append(FileRecord(f"file:{path.name}", 0, number, line.rstrip()))
                        if len(batch) >= s.batch_max:
                            await processor.process_batch(batch, {})
                            summary.lines_read += len(batch)
                            batch = []
            if batch:
                await processor.process_batch(batch, {})
                summary.lines_read += len(batch)
            await processor.settle()
            summary.elapsed_s = time.perf_counter() - began
            summary.stats = processor.stats.as_dict()
            return summary
        finally:
            await self.producer.stop()
            self.table.close()


class _RateColumn(ProgressColumn):
    """Lines per second of a task."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} lines/s")


class _Bars:
    """Progress per partition: lines read of those to read, lines/s, time left (or nothing)."""

    def __init__(self, progress: Progress | None, bounds: Plan) -> None:
        self.progress = progress
        self.tasks: dict[int, TaskID] = {}
        if progress is not None:
            for p in sorted(bounds.until):
                self.tasks[p] = progress.add_task(f"partition {p}", total=bounds.to_read(p))

    def advance(self, partition: int, count: int) -> None:
        if self.progress is not None and partition in self.tasks:
            self.progress.advance(self.tasks[partition], count)


@contextmanager
def _progress(enabled: bool, bounds: Plan) -> Iterator[_Bars]:
    if not enabled:
        yield _Bars(None, bounds)
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        _RateColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _Bars(progress, bounds)


def format_summary(summary: Summary) -> str:
    """The human summary printed at the end."""
    data = summary.as_dict()
    lines = [
        f"replayed {data['source']} into {data['output_topic']}: {data['lines_read']:,} lines "
        f"read in {data['elapsed_s']:.1f} s ({data['lines_per_s'] or 0:,.0f} lines/s)",
        f"decisions published: {data['decisions']:,}",
    ]
    for status, count in data["decisions_by_status"].items():
        lines.append(f"  {status:<24} {count:>10,}")
    for code, count in data["decisions_by_edit"].items():
        lines.append(f"  edit {code:<19} {count:>10,}")
    lines.append(f"dead letters: {data['dead_letters']:,}")
    for reason, count in data["dead_letters_by_reason"].items():
        lines.append(f"  {reason:<24} {count:>10,}")
    return "\n".join(lines)


def run(settings: Settings, options: ReplayOptions) -> int:
    """Run a replay as `options` ask; exit 0 when done. ReplayError on a usage error, RulesError,
    and Kafka's errors as they are (the command line words them)."""
    # Refused lines are counted in the summary and kept on <output>-dlq: no line each here.
    configure_logging(quiet={"stream_edits.runtime.processor": logging.ERROR})
    output = options.output_topic
    if output in (settings.output_topic, settings.input_topic, settings.dlq_topic):
        raise ReplayError(f"--output-topic {output} is a live topic: name another")
    if options.source:
        settings = settings.model_copy(update={"input_topic": options.source})
    start = parse_start(options.start)
    until = "end" if options.until == "end" else parse_time(options.until, "--until")
    if options.files and (start != "earliest" or until != "end"):
        raise ReplayError("--from and --until apply to topics; an archive is read whole")
    state_dir = default_home() / "replay" / f"{output}-{uuid.uuid4().hex[:8]}"
    replay = Replay(
        settings,
        output,
        options.rules,
        state_dir,
        progress=not options.json and options.progress and sys.stderr.isatty(),
    )
    try:
        with quiet_bootstrap_errors():
            if options.files:
                summary = asyncio.run(replay.from_files(list(options.files)))
            else:
                summary = asyncio.run(replay.from_topic(start, until))
    finally:
        if not options.keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    if options.json:
        sys.stdout.buffer.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(format_summary(summary))
        if options.keep:
            print(f"local state kept in {state_dir}")
    return 0
