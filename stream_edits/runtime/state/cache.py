"""Member state in a write-back cache over a `MemberTable`: the engine's claim entries and
patient-days of a member, read as one `MemberRecord` and written as one.

The engine sees two state maps (claims keyed (member, claim_id), days keyed (member, date of
service)); both are views into the member's record. A record is decoded from the table when a
batch first needs it, its parts only when the engine asks for them, and written back once per
batch: `writes` encodes the changed records with their claim index changes (claim_index.py), the
processor delivers them to the table's changelog, and `store` then writes them to the local store
and records the changelog offsets as persisted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date

import orjson

from stream_edits.engine import ClaimEntry, DayState
from stream_edits.runtime.state.claim_index import INDEX_VALUE, claim_index_key, is_member_key
from stream_edits.runtime.state.record import MemberRecord, MemberWrite
from stream_edits.runtime.state.tables import MemberTable


class MemberCache:
    """Write-back cache of member records over a `MemberTable` of raw bytes keyed by member_id.

    A record stays decoded while a write of it is on its way to the changelog (the table does
    not have it yet), and beyond that for up to `capacity` members, the least recently written
    evicted first. Only the parts a batch changed are encoded again. A rebalance empties it
    (`forget`): the table may then be recovered from the changelog.

    A member's record is read and written in its owner partition (`owner`, the placement
    function): the partition of its lines, its state and its changelog.
    """

    def __init__(self, table: MemberTable, owner: Callable[[str], int], capacity: int = 0) -> None:
        self.table = table
        self.owner = owner
        self.capacity = capacity
        self._records: dict[str, MemberRecord] = {}
        self._dirty: dict[str, int] = {}  # changed in the batch in the making → partition
        # Per partition, members changed since the processor last took them (`take_unfiled`).
        self._unfiled: dict[int, set[str]] = {}
        self._unstored: dict[str, int] = {}  # encoded writes not yet stored, per member
        # Index keys written but not yet stored: (present after the last write, writes left).
        self._index_unstored: dict[bytes, tuple[bool, int]] = {}
        self.claims = _ClaimsView(self)
        self.days = _DaysView(self)

    @property
    def changelog_topic(self) -> str | None:
        """The changelog topic of the member table (None: none)."""
        return self.table.changelog_topic

    def record(self, member_id: str) -> MemberRecord:
        """The member's record, read from the table unless cached."""
        record = self._records.get(member_id)
        if record is None:
            raw = self.table.get(self.owner(member_id), member_id.encode())
            record = MemberRecord() if raw is None else MemberRecord(orjson.loads(raw), len(raw))
            self._records[member_id] = record
        return record

    def restore(self, member_id: str, stored: bytes) -> MemberRecord:
        """Put back a member's record as it was (`stored`: its `to_bytes` then)."""
        before = self._records.get(member_id)
        record = self._records[member_id] = MemberRecord(orjson.loads(stored), len(stored))
        if before is not None:  # what the index must learn since the last writes still stands
            record.put_claims = before.put_claims
            record.dropped_claims = before.dropped_claims
        return record

    def mark(self, member_id: str) -> None:
        """Write this member's record at the end of the batch."""
        partition = self._dirty.get(member_id)
        if partition is None:
            partition = self._dirty[member_id] = self.owner(member_id)
        unfiled = self._unfiled.get(partition)
        if unfiled is None:
            unfiled = self._unfiled[partition] = set()
        unfiled.add(member_id)

    def writes(self) -> list[MemberWrite]:
        """Encode every changed record (an empty one as a deletion), each followed by its claim
        index changes, and forget the batch."""
        writes = []
        records = self._records
        for member_id, partition in self._dirty.items():
            self._unstored[member_id] = self._unstored.get(member_id, 0) + 1
            # Written now: the newest in the cache's order, the last to be evicted.
            record = records[member_id] = records.pop(member_id)
            member_key = member_id.encode()
            if record.empty:
                earliest_day = 0
                writes.append(MemberWrite(partition, member_id, None, 0, member_key))
            else:
                value, earliest_day = record.stored()
                record.size = len(value)
                writes.append(MemberWrite(partition, member_id, value, earliest_day, member_key))
            put, dropped = record.claim_changes()
            for claim_id in put:
                key = claim_index_key(claim_id, member_id)
                if not self._indexed(partition, key):
                    writes.append(self._index_write(partition, member_id, key, earliest_day))
            for claim_id in dropped:
                key = claim_index_key(claim_id, member_id)
                writes.append(self._index_write(partition, member_id, key, earliest_day, False))
        self._dirty.clear()
        self._unfiled.clear()
        return writes

    def _indexed(self, partition: int, key: bytes) -> bool:
        """True when the index key is stored, or on its way to the store."""
        unstored = self._index_unstored.get(key)
        if unstored is not None:
            return unstored[0]
        return self.table.get(partition, key) is not None

    def _index_write(
        self, partition: int, member_id: str, key: bytes, earliest_day: int, present: bool = True
    ) -> MemberWrite:
        left = self._index_unstored.get(key, (present, 0))[1]
        self._index_unstored[key] = (present, left + 1)
        value = INDEX_VALUE if present else None
        return MemberWrite(partition, member_id, value, earliest_day, key, index=True)

    def store(self, writes: Sequence[MemberWrite], changelog_offsets: Mapping[int, int]) -> None:
        """Write delivered records to the local store; persist the changelog offsets reached."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for write in writes:
            by_partition.setdefault(write.partition, []).append((write.key, write.value))
        for partition, items in by_partition.items():
            self.table.write(partition, items)
        for write in writes:
            member_id = write.member_id
            if write.index:
                present, left_writes = self._index_unstored.pop(write.key, (True, 1))
                if left_writes > 1:
                    self._index_unstored[write.key] = (present, left_writes - 1)
                continue
            left = self._unstored.get(member_id, 1) - 1  # none: forgotten by a rebalance
            if left:
                self._unstored[member_id] = left
            else:
                self._unstored.pop(member_id, None)
                record = self._records.get(member_id)
                if record is not None and record.empty and member_id not in self._dirty:
                    del self._records[member_id]
        for partition, offset in changelog_offsets.items():
            self.table.persisted(partition, offset)
        excess = len(self._records) - self.capacity
        if excess > 0:
            self._evict(excess)

    def _evict(self, count: int) -> None:
        """Drop up to `count` records, the least recently written first, never one with a
        change to store; reads only as far into the cache as the records it drops."""
        dirty, unstored = self._dirty, self._unstored
        evicted: list[str] = []
        for member_id in self._records:
            if member_id not in dirty and member_id not in unstored:
                evicted.append(member_id)
                if len(evicted) == count:
                    break
        for member_id in evicted:
            del self._records[member_id]

    def forget(self) -> None:
        """Drop every cached record (after a rebalance the table is the truth)."""
        self._records.clear()
        self._dirty.clear()
        self._unfiled.clear()
        self._unstored.clear()
        self._index_unstored.clear()

    def take_unfiled(self, partition: int) -> list[str]:
        """Members of `partition` changed since the last call for it in the batch in the making
        (each batch starts afresh: its writes are filed at its end)."""
        return list(self._unfiled.pop(partition, ()))

    def member_ids(self) -> list[str]:
        """Members stored on the partitions this worker owns, or cached."""
        stored = {key.decode() for key in self.table.stored_keys() if is_member_key(key)}
        return sorted(stored.union(self._records))


class _ClaimsView:
    """The engine's claims map: (member_id, claim_id) → ClaimEntry."""

    def __init__(self, cache: MemberCache) -> None:
        self._cache = cache

    def get(self, key: tuple[str, str]) -> ClaimEntry | None:
        return self._cache.record(key[0]).claim(key[1])

    def __setitem__(self, key: tuple[str, str], value: ClaimEntry) -> None:
        self._cache.record(key[0]).put_claim(key[1], value)
        self._cache.mark(key[0])


class _DaysView:
    """The engine's days map: (member_id, date of service) → DayState."""

    def __init__(self, cache: MemberCache) -> None:
        self._cache = cache

    def get(self, key: tuple[str, date]) -> DayState | None:
        return self._cache.record(key[0]).day(key[1])

    def __setitem__(self, key: tuple[str, date], value: DayState) -> None:
        self._cache.record(key[0]).put_day(key[1], value)
        self._cache.mark(key[0])
