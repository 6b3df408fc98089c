"""A write-back cache over a Faust table: decoded once per batch, written once per key per batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson
from faust.types import EventT, TableT

from stream_edits.stream.faust_compat import bind_event

K = TypeVar("K")
V = TypeVar("V")


class TableCache(Generic[K, V]):
    """The engine's state map in the stream.

    Reads fall through to the table and are decoded once; writes stay in memory until `flush`,
    which writes each dirty key once, bound to an event of the key's partition so the store and
    the changelog get the right partition. Every key a batch touches belongs to the partition of
    the event that touched it (input is co-partitioned by member).
    """

    def __init__(
        self,
        table: TableT,
        encode_key: Callable[[K], bytes],
        decode: Callable[[Any], V],
        encode: Callable[[V], Any],
    ) -> None:
        self.table = table
        self._encode_key = encode_key
        self._decode = decode
        self._encode = encode
        self._values: dict[K, V | None] = {}
        self._dirty: dict[K, EventT] = {}
        self.event: EventT | None = None  # the event being processed, set by the processor

    def get(self, key: K) -> V | None:
        """The state for `key`, read from the table on first use in this batch."""
        try:
            return self._values[key]
        except KeyError:
            raw = self.table.get(self._encode_key(key))
            value = None if raw is None else self._decode(orjson.loads(raw))
            self._values[key] = value
            return value

    def __setitem__(self, key: K, value: V) -> None:
        assert self.event is not None, "set TableCache.event before processing an event"
        self._values[key] = value
        self._dirty[key] = self.event

    def delete(self, key: K) -> None:
        """Remove `key` (a tombstone on the changelog at flush)."""
        assert self.event is not None, "set TableCache.event before processing an event"
        self._values[key] = None
        self._dirty[key] = self.event

    def flush(self) -> int:
        """Write every dirty key to the table once; forget the batch. Returns keys written."""
        written = len(self._dirty)
        for key, event in self._dirty.items():
            bind_event(event)
            value = self._values[key]
            table_key = self._encode_key(key)
            if value is None:
                self.table.pop(table_key, None)
            else:
                self.table[table_key] = orjson.dumps(self._encode(value))
        self._dirty.clear()
        self._values.clear()
        return written
