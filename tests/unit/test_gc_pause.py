"""The collector: paused around bulk work, kept off start-up objects, timed."""

from __future__ import annotations

import gc

from stream_edits.gc_pause import freeze_long_lived, gc_paused, time_collections


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
