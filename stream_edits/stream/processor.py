"""Per-batch processing in the decide task: decode → engine → send, and state expiry by stream
time.

Nothing here decides a claim: the engine does. This module turns consumed records into engine
calls and engine results into `claim-edits` and `claim-lines-dlq` messages.
"""

from __future__ import annotations

import base64
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from faust.types import TP, ProducerT, TopicT

from stream_edits.engine import EditEngine, LineDecision
from stream_edits.gc_pause import gc_paused
from stream_edits.intake import decode_claim_line
from stream_edits.models import ClaimLineEvent, DeadLetter, Rejection, SourceOffset
from stream_edits.rules.tables import RuleSet
from stream_edits.stream.cache import MemberCache, MemberTable, MemberWrite
from stream_edits.stream.delivery import Message, Sent, deliver, send
from stream_edits.stream.expiry import ExpiryIndex
from stream_edits.stream.inbox import InputRecord
from stream_edits.topics import line_key

log = logging.getLogger(__name__)

SWEEP_EVERY_DAYS = 7


def partition_of(member_id: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a member_id key."""
    hashed: int = murmur2(member_id)
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass
class _InFlight:
    """A processed batch on its way out: what was sent last for it, and what comes next."""

    sent: Sent
    writes: list[MemberWrite]
    next_offsets: dict[TP, int]


@dataclass
class Stats:
    """Counters for the web view: counts only, never claim content."""

    events: int = 0
    replayed: int = 0
    decisions: int = 0
    dead_letters: int = 0
    conflicts: int = 0
    redeliveries: int = 0
    batches: int = 0
    expired_keys: int = 0
    stream_day: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "events": self.events,
            "replayed": self.replayed,
            "decisions": self.decisions,
            "dead_letters": self.dead_letters,
            "conflicts": self.conflicts,
            "redeliveries": self.redeliveries,
            "batches": self.batches,
            "expired_keys": self.expired_keys,
            "stream_day_by_partition": {str(p): d for p, d in sorted(self.stream_day.items())},
        }


class Processor:
    """Runs batches of `claim-lines` records through the engine and publishes the results."""

    def __init__(
        self,
        rules: RuleSet,
        members: MemberTable,
        output: TopicT,
        dlq: TopicT,
        producer: Callable[[], Awaitable[ProducerT]],
        partitions: int,
        horizon_days: int,
        member_cache: int = 0,
    ) -> None:
        self.members = MemberCache(members, member_cache)
        self.engine = EditEngine(rules, self.members.claims, self.members.days)
        self.producer = producer
        self.output = output.get_topic_name()
        self.dlq = dlq.get_topic_name()
        # Messages of the batch in the making: sent together at its end, straight to the
        # producer (Faust's per-message FutureMessage and buffer task are the costliest part of
        # a Faust send, and its buffer's flush does not wait for everything).
        self._outbox: list[Message] = []
        self._decided_at = ""  # when the batch in the making started: its decisions' time
        self._deciding: deque[_InFlight] = deque()  # decisions sent (at most one batch)
        self._persisting: deque[_InFlight] = deque()  # state sent (at most one batch)
        self.partitions = partitions
        self.horizon_days = horizon_days
        self.stats = Stats()
        self.expiry = ExpiryIndex()
        self._stream_day: dict[int, int] = {}
        self._swept: dict[int, int] = {}

    async def process_batch(
        self, records: Sequence[InputRecord], next_offsets: Mapping[TP, int]
    ) -> dict[TP, int]:
        """Process records in order and send their decisions; move earlier batches along.

        `next_offsets` are the input offsets after this batch, per partition. Returns the input
        offsets that became safe to commit: those of batches whose decisions and state have
        both been delivered.

        A batch's life, overlapped with the processing of the next ones:
        1. processed: decisions and dead letters sent, changed member records encoded;
        2. once its decisions are delivered: its member records sent to the changelog;
        3. once those are delivered: records written to the local store, offsets committable.
        Crash safety (at-least-once, nothing lost): a crash before step 2 replays the batch
        against the state before it (the same decisions and revisions, sent again); after it,
        replayed events the member record already applied (its applied offset) are skipped,
        their decisions having been delivered first. A delivery error raises: nothing after it
        is committed.
        """
        self._decided_at = datetime.now(UTC).isoformat()
        # The objects a batch makes hold no reference cycles; reference counting frees them.
        # Without the collector's passes over them, the batch costs about a quarter less CPU.
        with gc_paused():
            for record in records:
                try:
                    self._process(record)
                except Exception as error:  # a bug must not stop every member's stream
                    log.exception(
                        "internal error on %s[%d]@%d",
                        record.topic,
                        record.partition,
                        record.offset,
                    )
                    reason = f"internal error: {type(error).__name__}"
                    self.dead_letter(record, Rejection(reason=reason))
            writes = self.members.writes()
        for write in writes:
            if write.value is not None:
                self.expiry.file(write.partition, write.member_id, write.earliest_day)
        outbox, self._outbox = self._outbox, []
        batch = _InFlight(await send(await self.producer(), outbox), writes, dict(next_offsets))
        self.stats.batches += 1
        committable = await self._advance(wait_for_all=False)
        self._deciding.append(batch)
        return committable

    async def settle(self) -> dict[TP, int]:
        """Bring every batch in flight to its end; the input offsets now safe to commit."""
        return await self._advance(wait_for_all=True)

    async def _advance(self, wait_for_all: bool) -> dict[TP, int]:
        """Steps 2 and 3 for the batches sent before (all of them with `wait_for_all`)."""
        # The producer is the transaction manager under exactly_once: sends stay transactional.
        producer = await self.producer()
        changelog = self.members.table.changelog_topic
        committable: dict[TP, int] = {}
        while self._deciding or self._persisting:
            if self._persisting:
                done = self._persisting.popleft()
                delivered = await done.sent.wait()
                offsets = {partition: last for (_, partition), last in delivered.items()}
                self.members.store(done.writes, offsets)
                committable.update(done.next_offsets)
            if self._deciding:
                decided = self._deciding.popleft()
                await decided.sent.wait()
                messages = [(changelog, w.key, w.value, w.partition) for w in decided.writes]
                decided.sent = await send(producer, messages)
                self._persisting.append(decided)
            if not wait_for_all:
                break
        return committable

    def _process(self, record: InputRecord) -> None:
        self.members.partition = record.partition
        self.stats.events += 1
        parsed = decode_claim_line(record.value or b"")
        if isinstance(parsed, Rejection):
            self.dead_letter(record, parsed)
            return
        self._advance_clock(record.partition, parsed)
        state = self.members.record(parsed.member_id)
        if record.offset <= state.applied_offset:
            self.stats.replayed += 1
            return
        state.applied_offset = record.offset
        self.members.mark(parsed.member_id)
        outcome = self.engine.process(parsed)
        if outcome.rejection is not None:
            self.stats.conflicts += 1
            self.dead_letter(record, outcome.rejection)
            return
        decisions = outcome.decisions
        if outcome.duplicate:
            # Idempotent re-publication: after a crash the state may already hold this event
            # while the decisions it caused were never sent. Re-send the current ones.
            self.stats.redeliveries += 1
            decisions = self.engine.restate_event(parsed)
        self._publish(record, decisions)

    def _publish(self, record: InputRecord, decisions: list[LineDecision]) -> None:
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        for decision in decisions:
            value = decision.to_wire()
            value["provider_npi"] = decision.provider_npi
            value["decided_at"] = self._decided_at
            value["source"] = source
            # Same partition as the input: all of a member's decisions stay in order in one
            # partition, and a line's revisions always land on one compacted partition.
            key = line_key(decision.claim_id, decision.line_number)
            self._outbox.append((self.output, key, orjson.dumps(value), record.partition))
        self.stats.decisions += len(decisions)

    async def dead_letter_now(self, record: InputRecord, rejection: Rejection) -> None:
        """Dead-letter one record outside a batch and wait until it is delivered."""
        await deliver(await self.producer(), [self._dead_letter(record, rejection)])

    def dead_letter(self, record: InputRecord, rejection: Rejection) -> None:
        """Publish the raw input, why it was refused and where it was, to the dead-letter topic
        with the batch in the making."""
        self._outbox.append(self._dead_letter(record, rejection))

    def _dead_letter(self, record: InputRecord, rejection: Rejection) -> Message:
        """The dead-letter message for a refused record (counted and logged, without values)."""
        raw: bytes = record.value or b""
        try:
            text: str | None = raw.decode()
        except UnicodeDecodeError:
            text = None
        letter = DeadLetter(
            reason=rejection.reason,
            errors=rejection.errors,
            raw_base64=base64.b64encode(raw).decode(),
            raw_text=text,
            source=SourceOffset(
                topic=record.topic, partition=record.partition, offset=record.offset
            ),
            failed_at=datetime.now(UTC),
        )
        value = orjson.dumps(letter.model_dump(mode="json", exclude_none=True))
        self.stats.dead_letters += 1
        log.warning(
            "dead-lettered %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            ", ".join(e.field for e in rejection.errors) or "conflict",
        )
        return (self.dlq, record.key, value, record.partition)

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
            self._sweep(partition, boundary - self.horizon_days)

    def _sweep(self, partition: int, cutoff: int) -> None:
        """Drop this partition's claim entries and days last touched before `cutoff`.

        Visits only members the expiry index files before the cutoff. Written members are
        filed at each flush; members changed in this batch are filed here, so where the batch
        boundaries fall changes nothing. The first sweep of a partition after (re)assignment
        files every member it owns with one full scan.
        """
        built = self.expiry.built(partition)
        to_file = self.members.dirty_ids() if built else self.members.member_ids()
        for member_id in to_file:
            if partition_of(member_id.encode(), self.partitions) == partition:
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
        self.members.forget()
        self.expiry.reset()
        self._stream_day.clear()
        self._swept.clear()
