"""orjson output for bytes that outlive the call that made them (outputs, keys, member records
held until their batch is delivered).

orjson returns its write buffer itself, never trimmed: 4 KiB or more from 3.12 on, 1 KiB before,
for a document of any length (ijl/orjson's BytesWriter; Home Assistant pinned 3.11.9 over it).
A worker holds a batch's outputs until they are delivered, so every 400-byte decision held a
page of its own: 4 KiB of fresh memory per decision and per key, a page fault each, and the
resident size of a backlog's batches multiplied by ten. A copy of the right size costs less
than the fault it saves (docs/performance.md, "Kept JSON is right-sized").
"""

from __future__ import annotations

from typing import Any

import orjson

_join = b"".join
_EMPTY = b""


def dumps_kept(value: Any) -> bytes:
    """orjson's bytes of `value`, copied into an object of exactly their length."""
    # join copies even a single part when a second (empty) one is given; bytes(memoryview(..))
    # copies too, at a third more.
    return _join((orjson.dumps(value), _EMPTY))
