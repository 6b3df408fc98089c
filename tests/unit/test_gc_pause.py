"""The collector: paused around bulk work, kept off start-up objects, timed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from stream_edits.gc_pause import (
    collect_on_schedule,
    freeze_long_lived,
    gc_paused,
    time_collections,
)


def test_paused_inside_the_block_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_frozen_objects_leave_the_collected_generations() -> None:
    kept = [{"n": n} for n in range(1000)]
    before = gc.get_freeze_count()
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() >= before + len(kept)
        assert sum(gc.get_count()) < 100  # nothing young left to walk
    finally:
        gc.unfreeze()


def test_every_collection_is_timed() -> None:
    pauses: list[float] = []
    callback = time_collections(pauses.append)
    try:
        gc.collect()
        gc.collect(0)
    finally:
        gc.callbacks.remove(callback)
    assert len(pauses) == 2 and all(0 <= p < 5 for p in pauses)


async def test_the_schedule_turns_automatic_passes_off_and_collects_cycles() -> None:
    pauses: list[float] = []
    callback = time_collections(pauses.append)
    task = asyncio.ensure_future(collect_on_schedule(0.05))
    try:
        await asyncio.sleep(0.01)
        assert not gc.isenabled()
        cycle: list[object] = []
        cycle.append(cycle)
        alive = weakref.ref(_Node(cycle))
        for _ in range(10_000):  # would trigger automatic passes
            [[n] for n in range(3)]
        assert alive() is not None  # only the schedule collects it
        await asyncio.sleep(0.15)
        assert alive() is None
        assert pauses
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.callbacks.remove(callback)
    assert gc.isenabled()


class _Node:
    """An object in a reference cycle with itself."""

    def __init__(self, payload: object) -> None:
        self.payload = payload
        self.me = self
