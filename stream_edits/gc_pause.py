"""Pausing Python's cyclic garbage collector around bulk work that creates no reference cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
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
