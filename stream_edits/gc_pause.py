"""Python's cyclic garbage collector: paused around bulk work that creates no reference cycles,
kept off a long-running process's start-up objects, and timed."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block, restoring its previous state after.

    For loops that build many acyclic objects (rule rows, engine state): reference counting frees
    them all, and the collections their allocations trigger only re-scan what is still alive.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_long_lived() -> None:
    """Collect once, then move every object alive now out of the collector's reach.

    For a long-running process after its start-up (frameworks, clients, rule tables): a full
    collection otherwise walks all of them, a pause of tens of milliseconds each time the
    objects that outlive batches add up. Frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


async def collect_on_schedule(every_s: float) -> None:
    """Turn the collector's automatic passes off and make a full one every `every_s` seconds.

    For a worker whose batches leave many young objects alive until their deliveries end
    (member records, outputs, fetched records) and make almost no cyclic garbage (31 objects over
    50,000 lines): an automatic pass then runs after nearly every batch and walks all of them,
    about a fifth of the worker's CPU. With the start-up heap frozen, a full pass walks only
    what is alive now: the batches in flight and the member records the worker keeps decoded
    (docs/decisions/0018-member-cache.md). Its cost is per pass, so passes are rare; cyclic
    garbage waits for the next one at most.
    """
    gc.disable()
    try:
        while True:
            await asyncio.sleep(every_s)
            gc.collect()
    finally:
        gc.enable()


def time_collections(observe: Callable[[float], None]) -> Callable[[str, dict[str, int]], None]:
    """Report every collection's duration (seconds) to `observe`; the callback registered (to
    remove from `gc.callbacks`)."""
    started = 0.0

    def on_collection(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            observe(time.perf_counter() - started)

    gc.callbacks.append(on_collection)
    return on_collection
