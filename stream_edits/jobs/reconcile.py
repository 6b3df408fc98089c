"""`stream-edits reconcile A B`: compare the latest decision of every line in two sources.

A source is an NDJSON file of decisions (`check` or `tail --json` output; an existing path, or `-`
for stdin) or a topic, read from the beginning of every partition up to the end offsets it has
when reconcile starts (read_committed, no consumer group, nothing committed; tombstones skipped).
A line's latest decision is the one with the highest revision; of equal revisions, the one read
last. Values that are not decisions are counted and located on stderr, not fatal.

Two decisions agree when their status and edit codes (in published order) are equal. Revision
numbers, decided_at and source are not compared: they depend on arrival order, so a replay of the
same input under the same rules may number and time its decisions differently from the live run.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from stream_edits.jobs.check import read_lines
from stream_edits.kafka.admin import TopicMissingError, require_topic
from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.models import Decision
from stream_edits.refusal import Refused
from stream_edits.settings import Settings

LineKey = tuple[str, int]

POLL_MS = 1000
# How many positions of unreadable values are named on stderr, per source.
NAMED_UNREADABLE = 5


class SourceError(Refused):
    """A source cannot be read: no such file or topic, or an I/O error."""


class Verdict(NamedTuple):
    """What two decisions of a line must share to agree."""

    status: str
    edits: tuple[str, ...]

    @classmethod
    def of(cls, decision: Decision) -> Verdict:
        """The status and edit codes of `decision`."""
        return cls(decision.status.value, tuple(edit.code for edit in decision.edits))

    @property
    def text(self) -> str:
        """`deny MUE_EXCEEDED`, `accept`: the status, then the edit codes comma-joined."""
        return f"{self.status} {','.join(self.edits)}" if self.edits else self.status

    def to_json(self) -> dict[str, Any]:
        """`{"status": ..., "edits": [codes]}`."""
        return {"status": self.status, "edits": list(self.edits)}


@dataclass
class Side:
    """One source as read: each line's latest (revision, verdict), and the unreadable values."""

    source: str
    latest: dict[LineKey, tuple[int, Verdict]] = field(default_factory=dict)
    unreadable: int = 0
    unreadable_at: list[str] = field(default_factory=list)

    def add(self, value: bytes, position: str) -> None:
        """Take the value read at `position` (`line 7`, `partition 2 offset 15`) after all
        earlier ones: it becomes its line's latest unless one read before has a higher revision."""
        try:
            decision = Decision.model_validate_json(value)
        except ValidationError:
            self.unreadable += 1
            if len(self.unreadable_at) < NAMED_UNREADABLE:
                self.unreadable_at.append(position)
            return
        line = (decision.claim_id, decision.line_number)
        current = self.latest.get(line)
        if current is None or decision.revision >= current[0]:
            self.latest[line] = (decision.revision, Verdict.of(decision))

    @property
    def verdicts(self) -> dict[LineKey, Verdict]:
        """Each line's latest verdict."""
        return {line: verdict for line, (_, verdict) in self.latest.items()}

    def to_json(self) -> dict[str, Any]:
        """`{"source": ..., "lines": N, "unreadable": N}`."""
        return {"source": self.source, "lines": len(self.latest), "unreadable": self.unreadable}


@dataclass(frozen=True)
class Difference:
    """A line whose latest decisions differ: `before` is A's, `after` B's (None: no decision)."""

    line: LineKey
    before: Verdict | None
    after: Verdict | None

    @property
    def kind(self) -> str:
        """`accept→deny MUE_EXCEEDED`, `missing in A` or `missing in B`."""
        if self.after is None:
            return "missing in B"
        if self.before is None:
            return "missing in A"
        return f"{self.before.text}→{self.after.text}"

    def format(self) -> str:
        """`C1001#2       accept → deny MUE_EXCEEDED`; a missing side shows as `-`."""
        line = f"{self.line[0]}#{self.line[1]}"
        before = "-" if self.before is None else self.before.text
        after = "-" if self.after is None else self.after.text
        missing = f"  ({self.kind})" if self.before is None or self.after is None else ""
        return f"{line:<12}  {before} → {after}{missing}"

    def to_json(self) -> dict[str, Any]:
        """The difference as a JSON-ready dict."""
        return {
            "line": list(self.line),
            "kind": self.kind,
            "before": None if self.before is None else self.before.to_json(),
            "after": None if self.after is None else self.after.to_json(),
        }


def compare(
    a: Mapping[LineKey, Verdict], b: Mapping[LineKey, Verdict]
) -> tuple[int, list[Difference]]:
    """How many lines agree, and every line that differs (or is on one side only), by line."""
    agree = sum(1 for line, verdict in a.items() if b.get(line) == verdict)
    differences = [
        Difference(line, a.get(line), b.get(line))
        for line in sorted(a.keys() | b.keys())
        if a.get(line) != b.get(line)
    ]
    return agree, differences


def count_kinds(differences: Iterable[Difference]) -> dict[str, int]:
    """Differences per kind of change, most frequent first (ties by name)."""
    counts = Counter(difference.kind for difference in differences)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class Report:
    """The comparison of two sources."""

    a: Side
    b: Side
    agree: int
    differences: list[Difference]

    @classmethod
    def of(cls, a: Side, b: Side) -> Report:
        """Compare the latest verdicts of `a` and `b`."""
        agree, differences = compare(a.verdicts, b.verdicts)
        return cls(a, b, agree, differences)

    def to_json(self) -> dict[str, Any]:
        """The report `--json` writes."""
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "agree": self.agree,
            "differences": [difference.to_json() for difference in self.differences],
            "by_kind": count_kinds(self.differences),
        }

    def lines(self, limit: int) -> list[str]:
        """The human report: up to `limit` differences, the counts by kind, a summary."""
        out = [difference.format() for difference in self.differences[:limit]]
        if len(self.differences) > limit:
            out.append(f"... {len(self.differences) - limit} more differences (--limit)")
        out += [f"{kind}: {count}" for kind, count in count_kinds(self.differences).items()]
        summary = (
            f"A: {len(self.a.latest)} lines, B: {len(self.b.latest)} lines, "
            f"agree: {self.agree}, differ: {len(self.differences)}"
        )
        if self.a.unreadable or self.b.unreadable:
            summary += f", unreadable: A {self.a.unreadable}, B {self.b.unreadable}"
        return [*out, summary]


def is_file(source: str) -> bool:
    """True when `source` names an NDJSON file (an existing path, or `-`), not a topic."""
    return source == "-" or Path(source).exists()


def read_file(path: str) -> Side:
    """The decisions of an NDJSON file (`-`: stdin), in file order; blank lines are skipped."""
    side = Side(path)
    try:
        for number, raw in enumerate(read_lines(path), start=1):
            if raw.strip():
                side.add(raw, f"line {number}")
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    return side


async def read_topic(settings: Settings, topic: str) -> Side:
    """The decisions of `topic`, every partition from its beginning to the end offset it has
    now; tombstones (null values, as compaction leaves) are skipped."""
    try:
        count = await require_topic(settings, topic, "Read")
    except TopicMissingError:
        raise SourceError(f"topic {topic} does not exist, nor a file of that name") from None
    # No group: nothing is committed. read_committed: aborted transactions are not output, and the
    # end offsets are the last stable ones. "earliest": the reset that assign() starts may
    # complete after seek_to_beginning's and win, so it must go to the beginning too.
    consumer = AIOKafkaConsumer(
        **kafka_client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        side = Side(topic)
        pending = set(partitions)
        # Positions step over compaction gaps and transaction markers, so each reaches its end.
        while pending := {tp for tp in pending if await consumer.position(tp) < ends[tp]}:
            consumer.pause(*(tp for tp in partitions if tp not in pending))
            batches = await consumer.getmany(*pending, timeout_ms=POLL_MS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        side.add(record.value, f"partition {tp.partition} offset {record.offset}")
        return side
    finally:
        await consumer.stop()


async def _read_topics(settings: Settings, topics: list[str]) -> list[Side]:
    return list(await asyncio.gather(*(read_topic(settings, topic) for topic in topics)))


def read_sources(settings: Settings, a: str, b: str) -> tuple[Side, Side]:
    """Read both sources; topics together, so their end offsets are taken at the same moment."""
    topics = [source for source in (a, b) if not is_file(source)]
    found = dict(zip(topics, asyncio.run(_read_topics(settings, topics)), strict=True))

    def side(source: str) -> Side:
        return found[source] if source in found else read_file(source)

    return side(a), side(b)


def run(settings: Settings, a: str, b: str, json_path: Path | None = None, limit: int = 50) -> int:
    """Run `reconcile`: the report to stdout (and `json_path`); exit 0 when A and B agree, 1 when
    they differ. Refused on a usage error or a source that cannot be read, Kafka's errors as they
    are (the command line words them)."""
    if limit < 0:
        raise Refused(f"--limit must be 0 or more, not {limit}")
    if a == b == "-":
        raise Refused("only one of A and B can be - (stdin)")
    with quiet_bootstrap_errors():
        side_a, side_b = read_sources(settings, a, b)
    for name, side in (("A", side_a), ("B", side_b)):
        if side.unreadable:
            more = ", ..." if side.unreadable > NAMED_UNREADABLE else ""
            where = ", ".join(side.unreadable_at) + more
            print(
                f"stream-edits reconcile: {name} ({side.source}): {side.unreadable} unreadable, "
                f"not decisions: {where}",
                file=sys.stderr,
            )
    report = Report.of(side_a, side_b)
    if json_path is not None:
        try:
            json_path.write_bytes(
                orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
            )
        except OSError as error:
            raise Refused(f"cannot write {json_path}: {error.strerror}") from error
    sys.stdout.buffer.write("".join(line + "\n" for line in report.lines(limit)).encode())
    sys.stdout.flush()
    return 1 if report.differences else 0
