"""The delivery order of every batch, in one place: decisions delivered → state delivered and
stored → input offsets committable.

A batch's checkpoint holds what the batch sent (decisions, dead letters, forwarded records), the
member records it changed and the input offsets after it. `Checkpoints` moves each through three
steps, each waiting for the one before:
1. its outputs are delivered (every send's result checked);
2. then its member records are sent to the table's changelog and delivered, and only then
   written to the local store with the changelog offsets reached;
3. then its input offsets are handed back as committable.
Crash safety (at-least-once, nothing lost): a crash before step 2 replays the batch against the
state before it (the same decisions and revisions, sent again); after it, replayed records the
member record already applied are skipped, their outputs having been delivered in step 1.
The steps run in a task of their own, a batch at a time, oldest first, while the decide task
goes on with the next batches (up to `MAX_IN_FLIGHT` of them sent and not yet committable): a
batch's state is sent only after its outputs and those of every earlier batch are delivered, and
its offsets become committable only after the state of every earlier batch is stored.

A delivered batch's state waits up to `STATE_LINGER_S` for the next batch's outputs and goes out
with them, in one produce request: a produce round trip per batch instead of two while lines
arrive steadily (each costs the worker's main thread a request to encode, a socket send and a
response to decode). The next batch's outputs never wait for it.
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


class OutputsNotDelivered(CheckpointError):
    """Step 1 failed: a decision, dead letter or forwarded record was not delivered."""


class StateNotDelivered(CheckpointError):
    """Step 2 failed: a member record did not reach the changelog (the local store is untouched)."""


class CheckpointObserver(Protocol):
    """Told when a batch's outputs are delivered and when its offsets become committable."""

    def delivered(self, record_timestamps_ms: Sequence[int]) -> None:
        """The decisions of records with these timestamps were delivered just now."""

    def checkpointed(self, seconds: float) -> None:
        """A batch's offsets became committable `seconds` after its outputs were sent."""

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


# Batches between their outputs being sent and their offsets becoming committable. Beyond this
# many, `begin` waits for the oldest: it bounds the member records held for the store.
MAX_IN_FLIGHT = 4
# How long a batch's state, its outputs delivered, waits for the next batch's outputs to go out
# with (a batch is taken about every 5-10 ms while lines arrive steadily); after that it is sent
# alone. It delays only when the batch's offsets become committable.
STATE_LINGER_S = 0.01


@dataclass
class _Checkpoint:
    """One batch on its way: what it sent, its state, its input offsets."""

    sent: Sent
    writes: list[MemberWrite]
    next_offsets: dict[TP, int]
    timestamps: Sequence[int]  # of the input records whose decisions the batch sent
    began: float  # time.monotonic() when its outputs were sent
    state_sent: Sent | None = None  # its member records, once handed to the producer
    state_sent_at: float = 0.0


class Checkpoints:
    """Batches between processing and commit, each taken through the three steps in order.

    A batch's outputs are sent as it is handed over (`begin`); a task of its own then takes the
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
        self._in_flight: deque[_Checkpoint] = deque()  # outputs sent, oldest first
        self._committable: dict[TP, int] = {}  # since the last `begin` or `settle` returned
        self._report: Callable[[dict[TP, int]], None] | None = None
        self._on_failure: Callable[[CheckpointError], None] | None = None
        self._failure: CheckpointError | None = None
        self._progress = asyncio.Event()  # a batch finished its steps, or failed
        # The driver, waiting for `begin` to hand a batch's state over (`_state_handed_over`).
        self._state_waiter: asyncio.Future[None] | None = None
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
        """Send a processed batch's outputs and queue the batch for its steps.

        `timestamps` are those of the input records whose decisions are among the outputs (for
        the latency the observer measures); `sources`, per output, the consumed partition whose
        record made it (its transaction under exactly_once). Returns the input offsets that
        became committable since the last call.
        """
        self._raise_failure()
        began = time.monotonic()
        # Claimed before the first await, so the driver never sends the same state again.
        carried = self._claim_delivered_states()
        try:
            sent = await self._send(outputs, sources)
            for checkpoint in carried:  # before anything yields: the same produce request
                await self._send_state(checkpoint)
        except BaseException:  # the driver sends what was not handed over (or fails on it)
            for checkpoint in carried:
                if checkpoint.state_sent is _CLAIMED:
                    checkpoint.state_sent = None
            if self._state_waiter is not None:
                _resolve(self._state_waiter)
            raise
        self._in_flight.append(_Checkpoint(sent, writes, dict(next_offsets), timestamps, began))
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

    def _claim_delivered_states(self) -> list[_Checkpoint]:
        """The batches whose state may go out now, oldest first: every output of theirs and of
        every batch before them acknowledged without error, their state not yet claimed."""
        ready = []
        for checkpoint in self._in_flight:
            if not checkpoint.sent.delivered():
                break
            if checkpoint.state_sent is None:
                checkpoint.state_sent = _CLAIMED
                ready.append(checkpoint)
        return ready

    async def _send_state(self, checkpoint: _Checkpoint) -> None:
        """Hand a batch's member records to the producer, for the table's changelog."""
        checkpoint.state_sent = _CLAIMED
        changelog = self.state.changelog_topic
        messages: list[Message] = []
        sources: list[TP] = []  # a member's record belongs to the partition of its lines
        if changelog is not None:
            writes = checkpoint.writes
            messages = [Message(changelog, w.key, w.value, w.partition, None) for w in writes]
            # One TP per partition, not per write (a NamedTuple costs a Python-level call).
            tps = {p: TP(changelog, p) for p in {w.partition for w in writes}}
            sources = [tps[w.partition] for w in writes]
        checkpoint.state_sent_at = time.monotonic()
        checkpoint.state_sent = await self._send(messages, sources)
        if self._state_waiter is not None:
            _resolve(self._state_waiter)

    async def _state_carried(self, checkpoint: _Checkpoint) -> None:
        """Wait up to STATE_LINGER_S for `begin` to carry the batch's state; else send it."""
        if checkpoint.state_sent is None:
            await self._state_handed_over(STATE_LINGER_S)
        while checkpoint.state_sent is _CLAIMED:  # `begin` is handing it over right now
            await self._state_handed_over(None)
        if checkpoint.state_sent is None:
            await self._send_state(checkpoint)

    async def _state_handed_over(self, timeout: float | None) -> None:
        """Wait until `begin` hands a batch's state to the producer (or `timeout` seconds)."""
        loop = asyncio.get_running_loop()
        self._state_waiter = waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._state_waiter = None

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

        One batch at a time: its state is sent only once its outputs and those of every batch
        before it are delivered, and stored after the state of every batch before it.
        """
        observer = self.observer
        while self._in_flight and self._failure is None:
            checkpoint = self._in_flight[0]
            try:
                await _wait(checkpoint.sent, OutputsNotDelivered)
                acknowledged = checkpoint.sent.acknowledged_at
                observer.stage("outputs", max(0.0, acknowledged - checkpoint.began))
                if checkpoint.timestamps:
                    observer.delivered(checkpoint.timestamps)
                await self._state_carried(checkpoint)
                assert checkpoint.state_sent is not None and checkpoint.state_sent is not _CLAIMED
                delivered = await _wait(checkpoint.state_sent, StateNotDelivered)
                stored_at = time.monotonic()
                observer.stage("changelog", stored_at - checkpoint.state_sent_at)
                offsets = {partition: last for (_, partition), last in delivered.items()}
                if self.store_on_commit:
                    self._uncommitted.append((checkpoint.writes, offsets))
                else:
                    self.state.store(checkpoint.writes, offsets)
                observer.stage("store", time.monotonic() - stored_at)
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


# Marks a batch's state as being handed to the producer (by `begin` or the driver).
_CLAIMED = Sent()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _wait(sent: Sent, error: type[CheckpointError]) -> LastOffsets:
    try:
        return await sent.wait()
    except Exception as cause:
        raise error(f"{error.__doc__} ({type(cause).__name__}: {cause})") from cause
