"""The delivery order of every batch, in one place: state delivered and stored → decisions
delivered → input offsets committable.

A batch's checkpoint holds the member records it changed, what it publishes (decisions, dead
letters, forwarded records) and the input offsets after it. `Checkpoints` moves each through
three steps, each waiting for the one before:
1. its member records are sent to the table's changelog and delivered, and then written to the
   local store with the changelog offsets reached;
2. then its outputs are sent and delivered (every send's result checked);
3. then its input offsets are handed back as committable.
No decision is published before the state that made it is durable, so a line's revisions only
increase, even across a crash. Crash safety (at-least-once, nothing lost): a crash before step 1
ends replays the batch against the state before it (nothing of the batch was published); after
it, replayed records the member record already applied are restated (their current decisions
published again: `ProcessorConfig.republish_replays`), their outputs having perhaps never gone
out. Had the outputs gone first, a crash between the two steps would replay the batch against
the older state, through another interleaving of the member's partitions, and could publish a
line's revisions again with other content (or leave the newest record of a line stale).
The steps run in a task of their own, a batch at a time, oldest first, while the decide task
goes on with the next batches (up to `MAX_IN_FLIGHT` of them sent and not yet committable): a
batch's state is sent as it is handed over, after the state of every earlier batch; its outputs
are sent once its state is stored and the outputs of every earlier batch are delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from faust.types import TP, ProducerT

from stream_edits.runtime.delivery import LastOffsets, Message, Sent, send
from stream_edits.runtime.state.record import MemberWrite


class CheckpointError(Exception):
    """A step of a checkpoint failed: nothing of that batch, or after it, becomes committable."""


class StateNotDelivered(CheckpointError):
    """Step 1 failed: a member record did not reach the changelog (the local store is untouched,
    nothing of the batch was published)."""


class OutputsNotDelivered(CheckpointError):
    """Step 2 failed: a decision, dead letter or forwarded record was not delivered."""


class CheckpointObserver(Protocol):
    """Told when a batch's outputs are delivered and when its offsets become committable."""

    def delivered(self, record_timestamps_ms: Sequence[int]) -> None:
        """The decisions of records with these timestamps were delivered just now."""

    def checkpointed(self, seconds: float) -> None:
        """A batch's offsets became committable `seconds` after its state was sent."""

    def stage(self, name: str, seconds: float) -> None:
        """One stage of a batch took `seconds` (names in `STAGES`)."""


class NoObserver:
    """A `CheckpointObserver` that ignores everything (replays, tests)."""

    def delivered(self, record_timestamps_ms: Sequence[int]) -> None:
        """Nothing to record."""

    def checkpointed(self, seconds: float) -> None:
        """Nothing to record."""

    def stage(self, name: str, seconds: float) -> None:
        """Nothing to record."""


class StateStore(Protocol):
    """Where delivered member records go: the local store, with the changelog offsets reached."""

    @property
    def changelog_topic(self) -> str | None:
        """The changelog topic of the member table (None: local state only, e.g. a replay's)."""

    def store(self, writes: Sequence[MemberWrite], changelog_offsets: Mapping[int, int]) -> None:
        """Write delivered records locally and persist the changelog offsets."""


# Batches between their state being sent and their offsets becoming committable. Beyond this
# many, `begin` waits for the oldest: it bounds the member records held for the store.
MAX_IN_FLIGHT = 4


@dataclass
class _Checkpoint:
    """One batch on its way: its state, what it publishes, its input offsets."""

    state_sent: Sent  # its member records, handed to the producer as the batch was
    writes: list[MemberWrite]
    outputs: Sequence[Message]
    sources: Sequence[TP] | None  # per output, its consumed partition (exactly_once)
    next_offsets: dict[TP, int]
    timestamps: Sequence[int]  # of the input records whose decisions the batch publishes
    began: float  # time.monotonic() when its state was sent


class Checkpoints:
    """Batches between processing and commit, each taken through the three steps in order.

    A batch's state is sent as it is handed over (`begin`); a task of its own then takes the
    batches, oldest first, through the steps, so the decide task never waits on a delivery
    unless `MAX_IN_FLIGHT` batches are on their way. Committable offsets go to `committable`
    (set with `report_to`) as they become so, and are also returned by `begin` and `settle`.
    """

    def __init__(
        self,
        producer: Callable[[], Awaitable[ProducerT | AIOKafkaProducer]],
        state: StateStore,
        observer: CheckpointObserver | None = None,
        store_on_commit: bool = False,
    ) -> None:
        """`store_on_commit` (exactly_once): a batch's delivered state waits in memory for the
        transaction that holds it to commit (`store_committed`), and its offsets become
        committable once it is delivered: the local store then never holds state a kill -9
        aborts, and records replayed after one are decided as new, not restated."""
        self.producer = producer
        self.state = state
        self.observer = observer or NoObserver()
        self.store_on_commit = store_on_commit
        # Delivered in the open transactions, to store once they commit (store_on_commit).
        self._uncommitted: list[tuple[list[MemberWrite], dict[int, int]]] = []
        self._in_flight: deque[_Checkpoint] = deque()  # state sent, oldest first
        self._committable: dict[TP, int] = {}  # since the last `begin` or `settle` returned
        self._report: Callable[[dict[TP, int]], None] | None = None
        self._on_failure: Callable[[CheckpointError], None] | None = None
        self._failure: CheckpointError | None = None
        self._progress = asyncio.Event()  # a batch finished its steps, or failed
        self._driver: asyncio.Task[None] | None = None

    def report_to(
        self,
        committable: Callable[[dict[TP, int]], None],
        on_failure: Callable[[CheckpointError], None],
    ) -> None:
        """Hand offsets to `committable` as they become so; a failed step to `on_failure` (the
        worker crashes even while no batch is being handed over)."""
        self._report, self._on_failure = committable, on_failure

    async def begin(
        self,
        outputs: Sequence[Message],
        writes: list[MemberWrite],
        next_offsets: Mapping[TP, int],
        timestamps: Sequence[int] = (),
        sources: Sequence[TP] | None = None,
    ) -> dict[TP, int]:
        """Send a processed batch's state and queue the batch for its steps (its outputs go
        out once the state is stored).

        `timestamps` are those of the input records whose decisions are among the outputs (for
        the latency the observer measures); `sources`, per output, the consumed partition whose
        record made it (its transaction under exactly_once). Returns the input offsets that
        became committable since the last call.
        """
        self._raise_failure()
        began = time.monotonic()
        state_sent = await self._send_state(writes)
        self._in_flight.append(
            _Checkpoint(state_sent, writes, outputs, sources, dict(next_offsets), timestamps, began)
        )
        if self._driver is None or self._driver.done():
            self._driver = asyncio.ensure_future(self._drive())
        while len(self._in_flight) > MAX_IN_FLIGHT and self._failure is None:
            await self._wait_progress()
        self._raise_failure()
        return self._take_committable()

    async def settle(self) -> dict[TP, int]:
        """Bring every batch in flight to its end; the input offsets now committable."""
        while self._in_flight and self._failure is None:
            await self._wait_progress()
        self._raise_failure()
        return self._take_committable()

    def store_committed(self, partitions: Set[int]) -> None:
        """The transactions holding the delivered state committed: store it locally, for the
        member partitions still held (`store_on_commit`); forget the rest."""
        uncommitted, self._uncommitted = self._uncommitted, []
        for writes, offsets in uncommitted:
            kept = [write for write in writes if write.partition in partitions]
            reached = {p: offset for p, offset in offsets.items() if p in partitions}
            self.state.store(kept, reached)

    def forget_uncommitted(self) -> None:
        """Drop state delivered but not yet committed (a rebalance: the next owner restores
        what commits from the changelog)."""
        self._uncommitted.clear()

    @property
    def in_flight(self) -> int:
        """Batches whose offsets are not yet committable."""
        return len(self._in_flight)

    async def _send(self, messages: Sequence[Message], sources: Sequence[TP] | None) -> Sent:
        # The producer is the transaction manager under exactly_once: sends stay transactional.
        return await send(await self.producer(), messages, sources)

    async def _send_state(self, writes: Sequence[MemberWrite]) -> Sent:
        """Hand a batch's member records to the producer, for the table's changelog."""
        changelog = self.state.changelog_topic
        if changelog is None:
            return await self._send([], [])
        messages = [Message(changelog, w.key, w.value, w.partition, None) for w in writes]
        # A member's record belongs to the partition of its lines; one TP per partition, not
        # per write (a NamedTuple costs a Python-level call).
        tps = {p: TP(changelog, p) for p in {w.partition for w in writes}}
        return await self._send(messages, [tps[w.partition] for w in writes])

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _take_committable(self) -> dict[TP, int]:
        committable, self._committable = self._committable, {}
        return committable

    async def _drive(self) -> None:
        """Take the batches in flight through their steps, oldest first, until none is left.

        One batch at a time: its state is stored after the state of every batch before it, and
        its outputs are sent once it is stored and every earlier batch's outputs are delivered.
        """
        observer = self.observer
        while self._in_flight and self._failure is None:
            checkpoint = self._in_flight[0]
            try:
                delivered = await _wait(checkpoint.state_sent, StateNotDelivered)
                stored_at = time.monotonic()
                acknowledged = checkpoint.state_sent.acknowledged_at
                observer.stage("changelog", max(0.0, acknowledged - checkpoint.began))
                offsets = {partition: last for (_, partition), last in delivered.items()}
                if self.store_on_commit:
                    self._uncommitted.append((checkpoint.writes, offsets))
                else:
                    self.state.store(checkpoint.writes, offsets)
                observer.stage("store", time.monotonic() - stored_at)
                sent_at = time.monotonic()
                sent = await self._send(checkpoint.outputs, checkpoint.sources)
                await _wait(sent, OutputsNotDelivered)
                observer.stage("outputs", max(0.0, sent.acknowledged_at - sent_at))
                if checkpoint.timestamps:
                    observer.delivered(checkpoint.timestamps)
            except CheckpointError as failed:
                self._fail(failed)
                return
            except Exception as cause:  # a send or the store failed: nothing after it is committed
                step = CheckpointError(f"a checkpoint step failed ({type(cause).__name__})")
                step.__cause__ = cause
                self._fail(step)
                return
            self._in_flight.popleft()
            self._committable.update(checkpoint.next_offsets)
            if self._report is not None:
                self._report(dict(checkpoint.next_offsets))
            observer.checkpointed(time.monotonic() - checkpoint.began)
            self._progress.set()

    def _fail(self, error: CheckpointError) -> None:
        self._failure = error
        self._progress.set()
        if self._on_failure is not None:
            self._on_failure(error)


async def _wait(sent: Sent, error: type[CheckpointError]) -> LastOffsets:
    try:
        return await sent.wait()
    except Exception as cause:
        raise error(f"{error.__doc__} ({type(cause).__name__}: {cause})") from cause
