"""Where member records live: the `MemberTable` protocol and its implementations, over a Faust
table (the worker's, with a changelog) and over a RocksDB database of its own (a replay's).

Beside its member records a table holds the claim index's keys (claim_index.py); `stored_keys`
skips them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, cast

from faust.types import StoreT, TableT
from faust.types.tuples import TP
from rocksdict import Rdict, WriteBatch

from stream_edits.runtime.faust_compat import partition_database
from stream_edits.runtime.state.claim_index import is_member_key


class MemberTable(Protocol):
    """Where member records live: a local store plus a changelog topic that can rebuild it
    (None for local state only)."""

    @property
    def changelog_topic(self) -> str | None:
        """The changelog topic, or None."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The stored record, or None."""

    def stored_keys(self) -> Iterator[bytes]:
        """Every member key in the partitions this worker owns (claim index keys skipped)."""

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Write (or with None delete) records of one partition in the local store, in order,
        as one write."""

    def persisted(self, partition: int, offset: int) -> None:
        """Record that the changelog holds every write of `partition` up to `offset`."""


class FaustMemberTable:
    """A Faust table written around Faust's per-key changelog path.

    Faust's `table[key] = value` queues one changelog message per write in its producer buffer,
    whose flush gives up after 0.1 s: a commit can then pass state that never reached the
    changelog. Here the processor sends the changelog messages itself, waits for them, and only
    then writes the local store (`put`) and the persisted offsets, the way Faust does after a
    changelog send completes.
    """

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table
        self.changelog_topic = table.changelog_topic.get_topic_name()

    def get(self, partition: int, key: bytes) -> bytes | None:
        database = partition_database(self.table.data, partition)
        source = self.table.data if database is None else database
        value: bytes | None = source.get(key)
        return value

    def stored_keys(self) -> Iterator[bytes]:
        return (key for key in self.table.data if is_member_key(key))

    def keys_with_prefix(self, partition: int, prefix: bytes) -> Iterator[bytes]:
        """The keys starting with `prefix` in `partition` (an owned one: reading another's
        would open its database), in order. The memory store keeps no partitions: its keys of
        every partition it holds are scanned."""
        database = partition_database(self.table.data, partition)
        if database is None:
            yield from sorted(key for key in self.table.data if key.startswith(prefix))
            return
        for key in database.keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            yield key

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        database = partition_database(self.table.data, partition)
        if database is None:
            for key, value in items:
                if value is None:
                    self.table.data.pop(key, None)
                else:
                    self.table.data[key] = value
            return
        database.write(_write_batch(items, raw_mode=True))  # Faust opens them in raw mode

    def persisted(self, partition: int, offset: int) -> None:
        tp = TP(self.changelog_topic, partition)
        store = cast(StoreT[bytes, bytes], self.table.data)
        if self.table.app.in_transaction:  # exactly_once: persisted when the transaction commits
            self.table.app.tables.persist_offset_on_commit(store, tp, offset)
        else:
            store.set_persisted_offset(tp, offset)


class LocalMemberTable:
    """A replay's member records: one RocksDB database of its own, no changelog (a replay is
    one run: it never restores)."""

    changelog_topic: str | None = None

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path))

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def stored_keys(self) -> Iterator[bytes]:
        keys: Iterator[bytes] = (
            cast(bytes, key)
            for key in self.db.keys()  # noqa: SIM118
            if is_member_key(cast(bytes, key))  # not a claim index key
        )
        return keys

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        self.db.write(_write_batch(items, raw_mode=False))

    def persisted(self, partition: int, offset: int) -> None:
        return None

    def close(self) -> None:
        """Flush and close the database."""
        self.db.close()


def _write_batch(items: Sequence[tuple[bytes, bytes | None]], raw_mode: bool) -> WriteBatch:
    """The puts (and, for None, deletes) of `items` as one RocksDB write batch: one write to the
    database's log for the lot, not one per record (a tenth of the worker's main thread went to
    single puts at 5,000 lines/s). `raw_mode` as the database was opened."""
    batch = WriteBatch(raw_mode=raw_mode)
    for key, value in items:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    return batch
