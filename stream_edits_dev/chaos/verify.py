"""Verifying a chaos run: what the output topics hold against `stream-edits check`.

`Ledger` takes decisions and dead letters as they are read (each record once: the topics are read
incrementally across steps); `score` compares the ledger with check's final decisions over every
record produced so far. `OutputReader` and `LagProbe` are the parts that talk to Kafka.

A line's latest decision is its highest revision (of equal ones, the last read), as consumers of
`claim-edits` are told to keep; a revision read again with another verdict, or a revision lower
than one read before, is counted (the worker publishes neither). Decisions agree when status and
edit codes (in order) are equal: the lines reach the worker through several producers and
partitions in no fixed order, and revision numbers depend on that order (final decisions do
not).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream_edits.engine.intake import decode_claim_line
from stream_edits.jobs.check import final_decisions
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.models import ClaimLineEvent, DeadLetterHeaders, RejectCode, Rejection
from stream_edits.rules.tables import RuleSet
from stream_edits.settings import Settings
from stream_edits_dev.chaos.inputs import VALID, Kind, Record

LineKey = tuple[str, int]
Verdict = tuple[str, tuple[str, ...]]  # status, edit codes in published order
Source = tuple[int, int]  # (partition, offset) of a claim-lines record
EXAMPLES = 5  # differences named per score
NEAR_END = 50  # a partition this close to its end is read to tell records from markers
PEEK_S = 2.0


class HarnessError(Exception):
    """The suite itself is wrong (its input, or check's view of it), not the worker."""


def expected_verdicts(records: Iterable[Record], rules: RuleSet) -> dict[LineKey, Verdict]:
    """What `stream-edits check` decides for these records' values (nulls and blanks are no
    lines to it), after checking that check refuses exactly the records built as invalid."""
    fed = [r for r in records if r.value is not None and r.value.strip()]
    rejects: list[Rejection] = []
    decisions = final_decisions([r.value or b"" for r in fed], rules, rejects)
    refused = sorted(fed[r.input_line - 1].index for r in rejects if r.input_line is not None)
    built = [r.index for r in fed if not r.valid]
    if refused != built:
        wrong = sorted(set(refused) ^ set(built))[:EXAMPLES]
        raise HarnessError(f"check refuses other records than those built invalid: {wrong}")
    return {
        (d.claim_id, d.line_number): (d.status.value, tuple(e.code for e in d.edits))
        for d in decisions
    }


def is_valid_line(value: bytes | None) -> bool:
    """True when `value` decodes as a claim line (the stream must decide it, not refuse it)."""
    if value is None or not value.strip():
        return False
    return isinstance(decode_claim_line(value), ClaimLineEvent)


_NOTICE = RejectCode.UNRESOLVED_REFERENCE.value


@dataclass
class DeadLetter:
    """A dead letter as read: why, and whether its value is a valid line."""

    reason: str
    value_valid: bool


@dataclass
class Ledger:
    """Everything read from the output and dead-letter topics so far."""

    latest: dict[LineKey, tuple[int, Verdict]] = field(default_factory=dict)
    # (claim_id, line_number, revision) -> the `source` and verdict of the first record read
    # with it
    seen: dict[tuple[str, int, int], tuple[bytes, Verdict]] = field(default_factory=dict)
    decisions: int = 0  # decision records read
    duplicates: int = 0  # records whose (line, revision) was read before
    conflicts: int = 0  # of those, records with another verdict than the first
    regressions: int = 0  # records with a lower revision than one read before for their line
    replayed: int = 0  # those of them with the same source too: the same event published again
    unreadable: int = 0  # output values that are not decisions
    dead_letters: dict[Source, DeadLetter] = field(default_factory=dict)
    dead_letter_records: int = 0
    foreign_dead_letters: int = 0  # dead letters whose source is not the input topic

    def add_decision(self, value: bytes | None) -> None:
        """Take one value of the output topic, read after all earlier ones."""
        if value is None:
            return  # a tombstone: compaction's, never the worker's
        try:
            doc = orjson.loads(value)
            line = (str(doc["claim_id"]), int(doc["line_number"]))
            revision = int(doc["revision"])
            verdict = (str(doc["status"]), tuple(str(e["code"]) for e in doc["edits"]))
            source = orjson.dumps(doc.get("source"))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.unreadable += 1
            return
        self.decisions += 1
        identity = (*line, revision)
        first = self.seen.get(identity)
        if first is None:
            self.seen[identity] = (source, verdict)
        else:
            self.duplicates += 1
            self.replayed += first[0] == source
            self.conflicts += first[1] != verdict
        current = self.latest.get(line)
        if current is None or revision >= current[0]:
            self.latest[line] = (revision, verdict)
        else:
            self.regressions += 1

    def add_dead_letter(
        self, headers: Sequence[tuple[str, bytes]], value: bytes | None, input_topic: str
    ) -> None:
        """Take one record of the dead-letter topic."""
        self.dead_letter_records += 1
        try:
            context = DeadLetterHeaders.from_headers(headers)
        except ValueError:
            self.foreign_dead_letters += 1
            return
        if context.topic != input_topic:
            self.foreign_dead_letters += 1
            return
        letter = DeadLetter(str(context.reason), is_valid_line(value))
        self.dead_letters[(context.partition, context.offset)] = letter


@dataclass(frozen=True)
class Score:
    """One verification of everything produced so far."""

    records: int  # records produced (valid and invalid, each once)
    expected: int  # lines check decides
    missing: int  # lines check decides with no decision on the output
    wrong: int  # lines whose latest decision differs from check's, or that check does not decide
    invalid: int  # deliveries of invalid records
    dead_letters_missing: int  # deliveries of invalid records with no dead letter
    dead_letters_wrong: int  # dead letters of valid lines
    duplicates: int  # (line, revision) records read more than once, so far
    replayed: int = 0  # of those, records with the same source as the first: a re-publication
    conflicts: int = 0  # records repeating a (line, revision) read before with another verdict
    regressions: int = 0  # records with a lower revision than one read before for their line
    examples: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """No missing or wrong decision, and every invalid record (only those) dead-lettered."""
        return not (
            self.missing or self.wrong or self.dead_letters_missing or self.dead_letters_wrong
        )


def _text(verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    status, edits = verdict
    return f"{status} {','.join(edits)}" if edits else status


def score(
    records: int,
    expected: Mapping[LineKey, Verdict],
    ledger: Ledger,
    invalid_sources: Iterable[Source],
    valid_sources: set[Source],
) -> Score:
    """Compare what was read with check's decisions and the records' deliveries."""
    missing, wrong = 0, 0
    examples: list[str] = []
    for line, verdict in expected.items():
        got = ledger.latest.get(line)
        if got is None:
            missing += 1
        elif got[1] != verdict:
            wrong += 1
        else:
            continue
        if len(examples) < EXAMPLES:
            have = None if got is None else got[1]
            examples.append(f"{line[0]}#{line[1]}: check {_text(verdict)}, read {_text(have)}")
    for line, (_, verdict) in ledger.latest.items():
        if line not in expected:
            wrong += 1
            if len(examples) < EXAMPLES:
                examples.append(f"{line[0]}#{line[1]}: check -, read {_text(verdict)}")
    invalid = list(invalid_sources)
    undelivered = [source for source in invalid if source not in ledger.dead_letters]
    # An unresolved_reference is a notice on a valid line that was also decided (a correction
    # that came before its original, as producers racing each other send them), not a refusal.
    misplaced = [
        source
        for source, letter in ledger.dead_letters.items()
        if (source in valid_sources or letter.value_valid) and letter.reason != _NOTICE
    ]
    for source in undelivered[: max(0, EXAMPLES - len(examples))]:
        examples.append(f"no dead letter for claim-lines[{source[0]}]@{source[1]}")
    for source in misplaced[: max(0, EXAMPLES - len(examples))]:
        letter = ledger.dead_letters[source]
        examples.append(f"valid line dead-lettered ({letter.reason}): [{source[0]}]@{source[1]}")
    return Score(
        records=records,
        expected=len(expected),
        missing=missing,
        wrong=wrong,
        invalid=len(invalid),
        dead_letters_missing=len(undelivered),
        dead_letters_wrong=len(misplaced),
        duplicates=ledger.duplicates,
        replayed=ledger.replayed,
        conflicts=ledger.conflicts,
        regressions=ledger.regressions,
        examples=tuple(examples),
    )


@dataclass
class Deliveries:
    """Where each produced record landed: (partition, offset) per record index (a record sent
    again after a failed send may have landed twice)."""

    at: dict[int, list[Source]] = field(default_factory=dict)
    kinds: dict[int, Kind] = field(default_factory=dict)

    def add(self, record: Record, partition: int, offset: int) -> None:
        """Record that `record` was acknowledged at `partition`, `offset`."""
        self.at.setdefault(record.index, []).append((partition, offset))
        self.kinds[record.index] = record.kind

    def sources(self, valid: bool) -> list[Source]:
        """The places of every delivered valid (or invalid) record."""
        return [
            source
            for index, places in self.at.items()
            if (self.kinds[index] in VALID) == valid
            for source in places
        ]


class OutputReader:
    """Reads the output and dead-letter topics from where it stopped, into a ledger.

    No consumer group: every partition is assigned and read from the beginning once. Survives a
    broker restart (the client reconnects; when it fails, a new one resumes from the positions
    read so far).
    """

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}
        outputs = (settings.output_topic, settings.dlq_topic)
        self.partitions = [
            TopicPartition(topic, p) for topic in outputs for p in range(settings.partitions)
        ]

    async def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                **kafka_client_kwargs(self.settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Under exactly_once, what an aborted transaction wrote is no output.
                isolation_level="read_committed",
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_bytes=16 * 1024 * 1024,
            )
            await consumer.start()
            consumer.assign(self.partitions)
            for tp in self.partitions:
                consumer.seek(tp, self.positions.get(tp, 0))
            self.consumer = consumer
        return self.consumer

    async def close(self) -> None:
        """Stop the client (positions are kept)."""
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Read every partition up to the end offsets it has now."""
        try:
            await asyncio.wait_for(self._catch_up(), timeout)
        except Exception:
            await self.close()  # resume with a new client next time
            raise

    async def _catch_up(self) -> None:
        consumer = await self._consumer()
        ends = await consumer.end_offsets(self.partitions)
        pending = {tp for tp in self.partitions if self.positions.get(tp, 0) < ends[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == self.settings.output_topic:
                        self.ledger.add_decision(record.value)
                    else:
                        self.ledger.add_dead_letter(
                            list(record.headers), record.value, self.settings.input_topic
                        )
                    self.positions[tp] = record.offset + 1
            for tp in list(pending):
                # The position steps over gaps (compaction) that no record reports.
                position = await consumer.position(tp)
                self.positions[tp] = max(self.positions.get(tp, 0), position)
                if self.positions[tp] >= ends[tp]:
                    pending.discard(tp)


class LagProbe:
    """The group's lag over claim-lines and the repartition topic, as the broker has it: end
    offsets minus committed offsets. Clients are kept between calls and made again after a
    failure (a broker restart).

    A partition a few offsets behind its end is read (read_committed) from the committed offset:
    under exactly_once the end offset counts transaction markers and aborted records, which no
    consumer ever gets and so never commits past; only records it would get count as lag.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def lag(self, timeout: float = 10.0) -> int | None:
        """Records not yet committed past; None when the broker does not answer in time."""
        try:
            return await asyncio.wait_for(self._lag(), timeout)
        except Exception:
            await self.close()
            return None

    async def close(self) -> None:
        """Stop the clients."""
        admin, consumer, self.admin, self.consumer = self.admin, self.consumer, None, None
        with contextlib.suppress(Exception):
            if consumer is not None:
                await consumer.stop()
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self.admin is None or self.consumer is None:
            await self.close()
            self.admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.settings))
            await self.admin.start()
            self.consumer = AIOKafkaConsumer(
                **kafka_client_kwargs(self.settings),
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await self.consumer.start()
        return self.admin, self.consumer

    async def _lag(self) -> int:
        settings = self.settings
        admin, consumer = await self._clients()
        topics = {t["topic"] for t in await admin.describe_topics() if t["error_code"] == 0}
        names = [settings.input_topic, settings.repartition_topic]
        tps = [
            TopicPartition(name, p)
            for name in names
            if name in topics
            for p in range(settings.partitions)
        ]
        # Commits first, ends after: an input offset committed once its forward was delivered
        # then always finds that forward inside the repartition topic's end offset.
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
        committed = {tp: max(0, c.offset) for tp, c in offsets.items()}
        ends = await consumer.end_offsets(tps)
        behind = gaps(ends, committed)
        near = {tp: committed.get(tp, 0) for tp, gap in behind.items() if 0 < gap <= NEAR_END}
        if near:
            visible = await self._visible(consumer, near, ends)
            behind.update({tp: count for tp, count in visible.items() if count is not None})
        return sum(behind.values())

    async def _visible(
        self,
        consumer: AIOKafkaConsumer,
        starts: Mapping[TopicPartition, int],
        ends: Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, int | None]:
        """Records a read_committed consumer gets between each start and end offset (None: not
        known within PEEK_S, e.g. behind a transaction still open)."""
        consumer.assign(list(starts))
        for tp, start in starts.items():
            consumer.seek(tp, start)
        found: dict[TopicPartition, int | None] = dict.fromkeys(starts)
        pending = set(starts)
        deadline = time.monotonic() + PEEK_S
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batches.items():
                if any(record.offset < ends[tp] for record in records):
                    found[tp] = sum(record.offset < ends[tp] for record in records)
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    found[tp] = 0
                    pending.discard(tp)
        return found


def gaps(
    ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Offsets between the committed offset and the end, per partition of `ends` (a partition
    with no commit, or -1, has committed nothing)."""
    return {tp: max(0, end - max(0, committed.get(tp, 0))) for tp, end in ends.items()}
