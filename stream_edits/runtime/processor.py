"""Per-batch processing in the decide task: decode → place → engine → outputs, and state expiry
by stream time.

Nothing here decides a claim: `decide_line` does. This module turns consumed records into
decisions on `claim-edits`, dead letters on `claim-lines-dlq` and forwards to the repartition
topic, and hands each batch to the checkpoints that deliver it in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from faust.types import TP, ProducerT

from stream_edits.engine import EditEngine, LineDecision
from stream_edits.engine.core import unresolved_reference
from stream_edits.engine.intake import decode_claim_line
from stream_edits.engine.line import decide_line
from stream_edits.gc_pause import gc_paused
from stream_edits.kafka.topics import line_key
from stream_edits.kept_json import dumps_kept
from stream_edits.log_safety import exception_summary
from stream_edits.models import ClaimLineEvent, RejectCode, Rejection, SourceOffset
from stream_edits.rules.tables import RuleSet
from stream_edits.runtime.checkpoint import CheckpointObserver, Checkpoints, NoObserver
from stream_edits.runtime.dead_letters import dead_letter_message
from stream_edits.runtime.delivery import Message
from stream_edits.runtime.inbox import InputRecord
from stream_edits.runtime.placement import Origin, origin_headers, origin_of, owner_function
from stream_edits.runtime.state.cache import MemberCache
from stream_edits.runtime.state.expiry import ExpiryIndex
from stream_edits.runtime.state.tables import MemberTable

log = logging.getLogger(__name__)

SWEEP_EVERY_DAYS = 7


class BatchObserver(CheckpointObserver, Protocol):
    """Measures batches (telemetry.Telemetry in the worker)."""

    def batch(self, records: int, decisions: int, dead_letters: int) -> None:
        """A batch of `records` was processed, publishing these many decisions and dead letters."""


class _NoBatchObserver(NoObserver):
    def batch(self, records: int, decisions: int, dead_letters: int) -> None:
        """Nothing to record."""


@dataclass(frozen=True)
class Topics:
    """The names the processor reads and writes."""

    repartition: str
    output: str
    dlq: str
    app_id: str


@dataclass
class Stats:
    """Counters for the web view: counts only, never claim content."""

    events: int = 0
    forwarded: int = 0
    replayed: int = 0
    decisions: int = 0
    revisions: int = 0  # decisions of lines other than the one just read: a later line changed them
    dead_letters: int = 0
    conflicts: int = 0
    redeliveries: int = 0
    batches: int = 0
    expired_keys: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    decisions_by_status: dict[str, int] = field(default_factory=dict)
    decisions_by_edit: dict[str, int] = field(default_factory=dict)
    stream_day: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "events": self.events,
            "forwarded": self.forwarded,
            "replayed": self.replayed,
            "decisions": self.decisions,
            "revisions": self.revisions,
            "decisions_by_status": dict(sorted(self.decisions_by_status.items())),
            "decisions_by_edit": dict(sorted(self.decisions_by_edit.items())),
            "dead_letters": self.dead_letters,
            "dead_letters_by_reason": dict(sorted(self.dead_letters_by_reason.items())),
            "conflicts": self.conflicts,
            "redeliveries": self.redeliveries,
            "batches": self.batches,
            "expired_keys": self.expired_keys,
            "stream_day_by_partition": {str(p): d for p, d in sorted(self.stream_day.items())},
        }


@dataclass(frozen=True, kw_only=True)
class ProcessorConfig:
    """How a processor runs: what it reads and writes, its partitions, its state limits, and how a
    replay or exactly_once changes what it publishes."""

    topics: Topics
    partitions: int  # of every co-partitioned topic: the input, the repartition, the changelog
    horizon_days: int  # claim entries and days idle longer than this (in stream time) expire
    member_state_max_bytes: int  # a line that would take its member's record past it: refused
    member_cache: int = 0  # member records kept decoded between batches, beyond those in flight
    # False applies every line where it is read (a replay, which owns every partition's state).
    forward: bool = True
    # Partition → offset: records before it are decided without publishing what they cause (a
    # replay rebuilding state before its window). None publishes everything.
    publish_from: Mapping[int, int] | None = None
    # Publish again what a replayed record published: its state was delivered before its outputs
    # (which a crash may have lost), or under exactly_once its transaction aborted. False for a
    # replay, which starts from no state.
    republish_replays: bool = False
    # exactly_once: member records reach the local store once their transaction commits
    # (Checkpoints.store_committed).
    store_on_commit: bool = False


class Processor:
    """Runs batches of `claim-lines` (and repartition) records through the per-line rule."""

    def __init__(
        self,
        *,
        rules: RuleSet,
        members: MemberTable,
        producer: Callable[[], Awaitable[ProducerT | AIOKafkaProducer]],
        config: ProcessorConfig,
        observer: BatchObserver | None = None,
    ) -> None:
        """`members` holds the member records, `producer` gives the producer every send goes
        through; `observer` measures batches, deliveries and checkpoints."""
        self.config = config
        self.owner = owner_function(config.partitions)
        self.members = MemberCache(members, self.owner, config.member_cache)
        self.engine = EditEngine(rules, self.members.claims, self.members.days)
        self.topics = config.topics
        self.observer: BatchObserver = observer or _NoBatchObserver()
        self.checkpoints = Checkpoints(
            producer, self.members, self.observer, store_on_commit=config.store_on_commit
        )
        # Messages of the batch in the making: sent together at its end, straight to the
        # producer (Faust's per-message FutureMessage and buffer task are the costliest part of
        # a Faust send, and its buffer's flush does not wait for everything).
        self._outbox: list[Message] = []
        # Per message of the outbox, the consumed partition whose record made it: under
        # exactly_once a message joins that partition's transaction (see delivery.send).
        self._sources: list[TP] = []
        self._tps_of: dict[str, dict[int, TP]] = {}  # topic → partition → its TP (_consumed_tp)
        self._decided_at = ""  # when the batch in the making started: its decisions' time
        self._timestamps: list[int] = []  # of the batch's records that published decisions
        self._muted = False  # the record being processed publishes nothing (before the window)
        self.stats = Stats()
        self.expiry = ExpiryIndex()
        self._stream_day: dict[int, int] = {}
        self._swept: dict[int, int] = {}
        # The names member records keep applied offsets under: "i3" for input partition 3, "r3"
        # for the repartition topic's (indexed [from the repartition topic][partition]).
        self._consumed_names = tuple(
            tuple(f"{prefix}{p}" for p in range(config.partitions)) for prefix in ("i", "r")
        )

    async def process_batch(
        self, records: Sequence[InputRecord], next_offsets: Mapping[TP, int]
    ) -> dict[TP, int]:
        """Process records in order and send their outputs; move earlier batches along.

        `next_offsets` are the consumed offsets after this batch, per partition. Returns the
        offsets that became safe to commit (see `checkpoint` for the order behind it).
        """
        began = time.monotonic()
        self._decided_at = datetime.now(UTC).isoformat()
        decisions, dead_letters = self.stats.decisions, self.stats.dead_letters
        # The objects a batch makes hold no reference cycles; reference counting frees them.
        # Without the collector's passes over them, the batch costs about a quarter less CPU.
        with gc_paused():
            for record in records:
                try:
                    self._process(record)
                except Exception as error:  # a bug must not stop every member's stream
                    log.error(
                        "internal error on %s[%d]@%d: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        exception_summary(error),
                    )
                    reason = f"internal error: {type(error).__name__}"
                    self.dead_letter(
                        record, Rejection(reason=reason, code=RejectCode.INTERNAL_ERROR)
                    )
            decided = time.monotonic()
            writes = self.members.writes()
        self.observer.stage("engine", decided - began)
        self.observer.stage("encode", time.monotonic() - decided)
        for write in writes:
            if write.value is not None:
                self.expiry.file(write.partition, write.member_id, write.earliest_day)
        outbox, self._outbox = self._outbox, []
        sources, self._sources = self._sources, []
        timestamps, self._timestamps = self._timestamps, []
        self.stats.batches += 1
        self.observer.batch(
            len(records), self.stats.decisions - decisions, self.stats.dead_letters - dead_letters
        )
        return await self.checkpoints.begin(outbox, writes, next_offsets, timestamps, sources)

    async def settle(self) -> dict[TP, int]:
        """Bring every batch in flight to its end; the input offsets now safe to commit."""
        return await self.checkpoints.settle()

    def committed(self, partitions: Set[int]) -> None:
        """The transactions committed: store their member records (ProcessorConfig
        .store_on_commit) of these member partitions, still held."""
        self.checkpoints.store_committed(partitions)

    def _process(self, record: InputRecord) -> None:
        config = self.config
        self.stats.events += 1
        if config.publish_from is not None:
            self._muted = record.offset < config.publish_from.get(record.partition, 0)
        parsed = decode_claim_line(record.value or b"")
        if isinstance(parsed, Rejection):
            self.dead_letter(record, parsed)
            return
        owner = self.owner(parsed.member_id)
        if owner != record.partition and config.forward:
            self._forward(record, parsed.member_id, owner)
            return
        self._advance_clock(owner, parsed)
        state = self.members.record(parsed.member_id)
        consumed = self._consumed_names[record.topic == self.topics.repartition][record.partition]
        # At or before the offset this member last applied from this partition: a record
        # replayed after a crash, or the same offset of a recreated topic. A replay holds
        # nothing new (its outputs were delivered before its state was stored), so it publishes
        # nothing; new content at an old offset is applied and published like any line.
        applied = state.applied.get(consumed, -1)
        replayed = record.offset <= applied
        # A member near the state limit is snapshotted first, so a line that would take its
        # record past the limit can be undone and dead-lettered instead of stopping the stream.
        # A smaller one cannot pass the limit with one line (a line adds a bounded size).
        limit = config.member_state_max_bytes
        snapshot = state.to_bytes() if state.size > limit // 4 else None
        # Never lowered: a replayed record must not make the records after it look new.
        state.applied[consumed] = max(record.offset, applied)
        self.members.mark(parsed.member_id)
        result = decide_line(self.engine, parsed)
        if snapshot is not None and len(state.to_bytes()) > limit:
            self.members.restore(parsed.member_id, snapshot).applied[consumed] = max(
                record.offset, applied
            )
            reason = f"the member's stored state would pass {limit} bytes"
            if not replayed or config.republish_replays:
                self.dead_letter(
                    record, Rejection(reason=reason, code=RejectCode.MEMBER_STATE_TOO_LARGE)
                )
            return
        if replayed and (result.duplicate or result.rejection is not None):
            self.stats.replayed += 1
            if not config.republish_replays:
                return
        if result.rejection is not None:
            self.stats.conflicts += 1
            self.dead_letter(record, result.rejection)
            return
        if result.duplicate:
            self.stats.redeliveries += 1
        self._publish(record, parsed, result.decisions, owner)
        if result.unresolved is not None and (not replayed or config.republish_replays):
            self.dead_letter(record, unresolved_reference(result.unresolved))

    def _forward(self, record: InputRecord, member_id: str, owner: int) -> None:
        """Send the record, bytes unchanged, to its member's partition of the repartition topic,
        with headers naming where it was first read."""
        headers = origin_headers(self._origin(record))
        message = Message(self.topics.repartition, member_id.encode(), record.value, owner, headers)
        self._outbox.append(message)
        self._sources.append(self._consumed_tp(record))
        self.stats.forwarded += 1

    def _consumed_tp(self, record: InputRecord) -> TP:
        """The record's topic partition, one TP object per partition (a NamedTuple costs a
        Python-level call to build; this is per line)."""
        tps = self._tps_of.get(record.topic)
        if tps is None:
            tps = self._tps_of[record.topic] = {}
        tp = tps.get(record.partition)
        if tp is None:
            tp = tps[record.partition] = TP(record.topic, record.partition)
        return tp

    @staticmethod
    def _origin(record: InputRecord) -> Origin:
        return origin_of(
            record.topic, record.partition, record.offset, record.timestamp, record.headers
        )

    def _publish(
        self,
        record: InputRecord,
        line: ClaimLineEvent,
        decisions: list[LineDecision],
        owner: int,
    ) -> None:
        if self._muted:
            return
        by_status, by_edit = self.stats.decisions_by_status, self.stats.decisions_by_edit
        if record.headers:  # forwarded: name the original record
            origin = self._origin(record)
            source = {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset}
            timestamp = origin.timestamp
        else:
            source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
            timestamp = record.timestamp
        if decisions and timestamp is not None:
            self._timestamps.append(timestamp)
        consumed = self._consumed_tp(record)
        output, outbox, sources = self.topics.output, self._outbox, self._sources
        decided_at = self._decided_at
        for decision in decisions:
            if decision.line_number != line.line_number or decision.claim_id != line.claim_id:
                self.stats.revisions += 1
            status = str(decision.status)  # the StrEnum's value, without Enum's property
            by_status[status] = by_status.get(status, 0) + 1
            for edit in decision.edits:
                by_edit[edit.code] = by_edit.get(edit.code, 0) + 1
            value = decision.to_wire()
            value["provider_npi"] = decision.provider_npi
            value["decided_at"] = decided_at
            value["source"] = source
            # The member's partition: all of a member's decisions stay in order in one
            # partition, and a line's revisions always land on one compacted partition.
            key = line_key(decision.claim_id, decision.line_number)
            outbox.append(Message(output, key, dumps_kept(value), owner, None))
            sources.append(consumed)
        self.stats.decisions += len(decisions)

    def dead_letter(self, record: InputRecord, rejection: Rejection) -> None:
        """Dead-letter a refused record with the batch in the making (counted and logged,
        without values)."""
        if self._muted:
            return
        origin = self._origin(record)
        source = SourceOffset(topic=origin.topic, partition=origin.partition, offset=origin.offset)
        self.stats.dead_letters += 1
        reasons = self.stats.dead_letters_by_reason
        reasons[rejection.code.value] = reasons.get(rejection.code.value, 0) + 1
        log.warning(
            "dead-lettered %s[%d]@%d: %s (%s)",
            source.topic,
            source.partition,
            source.offset,
            rejection.code.value,
            ", ".join(e.field for e in rejection.errors) or "-",
        )
        message = dead_letter_message(
            self.topics.dlq,
            record.key,
            record.value,
            source,
            origin.timestamp,
            rejection,
            self.topics.app_id,
        )
        self._outbox.append(message)
        self._sources.append(self._consumed_tp(record))

    # -- expiry by stream time ------------------------------------------------------------------

    def _advance_clock(self, partition: int, parsed: ClaimLineEvent) -> None:
        """Track the partition's stream time (newest received_at) and sweep on week boundaries.

        Sweeps happen at fixed stream-time boundaries, so a replay of the same partition expires
        exactly the same state at the same point as the live run did; the wall clock never
        enters.
        """
        today = parsed.received_at.date().toordinal()
        if today <= self._stream_day.get(partition, 0):
            return
        self._stream_day[partition] = today
        self.stats.stream_day[partition] = date.fromordinal(today).isoformat()
        boundary = today - today % SWEEP_EVERY_DAYS
        if boundary > self._swept.get(partition, 0):
            self._swept[partition] = boundary
            self._sweep(partition, boundary - self.config.horizon_days)

    def _sweep(self, partition: int, cutoff: int) -> None:
        """Drop this partition's claim entries and days last touched before `cutoff`.

        Visits only members the expiry index files before the cutoff. Written members are
        filed at each flush; members changed in this batch since the partition's last sweep are
        filed here, so where the batch boundaries fall changes nothing. The first sweep of a
        partition after (re)assignment files every member it owns with one full scan.
        """
        unfiled = self.members.take_unfiled(partition)
        if self.expiry.built(partition):
            to_file = unfiled
        else:
            to_file = [m for m in self.members.member_ids() if self.owner(m) == partition]
        for member_id in to_file:
            record = self.members.record(member_id)
            self.expiry.file(partition, member_id, record.earliest_day())
        self.expiry.mark_built(partition)
        for member_id in self.expiry.due(partition, cutoff):
            record = self.members.record(member_id)
            expired = record.expire(cutoff)
            if expired:
                self.members.mark(member_id)
                self.stats.expired_keys += expired
            if not record.empty:
                self.expiry.file(partition, member_id, record.earliest_day())

    def forget_assignment(self) -> None:
        """Drop per-partition memory after a rebalance: cached records, clocks and the expiry
        index are rebuilt from the table and the stream."""
        self.checkpoints.forget_uncommitted()
        self.members.forget()
        self.expiry.reset()
        self._stream_day.clear()
        self._swept.clear()
