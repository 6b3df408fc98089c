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
Under a backlog a batch's steps overlap the processing of the next (`begin` advances the batch
before by one step; `settle` finishes them all), and the order holds per batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from faust.types import TP, ProducerT

from stream_edits.stream.cache import MemberWrite
from stream_edits.stream.delivery import LastOffsets, Message, Sent, send


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


class NoObserver:
    """A `CheckpointObserver` that ignores everything (replays, tests)."""

    def delivered(self, record_timestamps_ms: Sequence[int]) -> None:
        """Nothing to record."""

    def checkpointed(self, seconds: float) -> None:
        """Nothing to record."""


class StateStore(Protocol):
    """Where delivered member records go: the local store, with the changelog offsets reached."""

    @property
    def changelog_topic(self) -> str | None:
        """The changelog topic of the member table (None: local state only, e.g. a replay's)."""

    def store(self, writes: Sequence[MemberWrite], changelog_offsets: Mapping[int, int]) -> None:
        """Write delivered records locally and persist the changelog offsets."""


@dataclass
class _Checkpoint:
    """One batch on its way: what was sent last for it, its state, its input offsets."""

    sent: Sent
    writes: list[MemberWrite]
    next_offsets: dict[TP, int]
    timestamps: Sequence[int]  # of the input records whose decisions the batch sent
    began: float  # time.monotonic() when its outputs were sent


class Checkpoints:
    """Batches between processing and commit, each taken through the three steps in order."""

    def __init__(
        self,
        producer: Callable[[], Awaitable[ProducerT | AIOKafkaProducer]],
        state: StateStore,
        observer: CheckpointObserver | None = None,
    ) -> None:
        self.producer = producer
        self.state = state
        self.observer = observer or NoObserver()
        self._delivering: deque[_Checkpoint] = deque()  # outputs sent (at most one batch)
        self._persisting: deque[_Checkpoint] = deque()  # state sent (at most one batch)

    async def begin(
        self,
        outputs: Sequence[Message],
        writes: list[MemberWrite],
        next_offsets: Mapping[TP, int],
        timestamps: Sequence[int] = (),
        sources: Sequence[TP] | None = None,
    ) -> dict[TP, int]:
        """Send a processed batch's outputs; move the batches before it one step along.

        `timestamps` are those of the input records whose decisions are among the outputs (for
        the latency the observer measures); `sources`, per output, the consumed partition whose
        record made it (its transaction under exactly_once). Returns the input offsets that
        became committable.
        """
        began = time.monotonic()
        sent = await self._send(outputs, sources)
        checkpoint = _Checkpoint(sent, writes, dict(next_offsets), timestamps, began)
        committable = await self._advance(wait_for_all=False)
        self._delivering.append(checkpoint)
        return committable

    async def settle(self) -> dict[TP, int]:
        """Bring every batch in flight to its end; the input offsets now committable."""
        return await self._advance(wait_for_all=True)

    async def _send(self, messages: Sequence[Message], sources: Sequence[TP] | None) -> Sent:
        # The producer is the transaction manager under exactly_once: sends stay transactional.
        return await send(await self.producer(), messages, sources)

    async def _advance(self, wait_for_all: bool) -> dict[TP, int]:
        committable: dict[TP, int] = {}
        while self._delivering or self._persisting:
            if self._persisting:
                done = self._persisting.popleft()
                delivered = await _wait(done.sent, StateNotDelivered)
                offsets = {partition: last for (_, partition), last in delivered.items()}
                self.state.store(done.writes, offsets)
                committable.update(done.next_offsets)
                self.observer.checkpointed(time.monotonic() - done.began)
            if self._delivering:
                checkpoint = self._delivering.popleft()
                await _wait(checkpoint.sent, OutputsNotDelivered)
                if checkpoint.timestamps:
                    self.observer.delivered(checkpoint.timestamps)
                changelog = self.state.changelog_topic
                messages: list[Message] = []
                sources: list[TP] = []  # a member's record belongs to the partition of its lines
                if changelog is not None:
                    writes = checkpoint.writes
                    messages = [(changelog, w.key, w.value, w.partition, None) for w in writes]
                    sources = [TP(changelog, w.partition) for w in writes]
                checkpoint.sent = await self._send(messages, sources)
                self._persisting.append(checkpoint)
            if not wait_for_all:
                break
        return committable


async def _wait(sent: Sent, error: type[CheckpointError]) -> LastOffsets:
    try:
        return await sent.wait()
    except Exception as cause:
        raise error(f"{error.__doc__} ({type(cause).__name__}: {cause})") from cause
