"""Member state over one Faust table: the engine's claim entries and patient-days of a member,
stored as one record so a batch's writes for a member land together or not at all.

The engine sees two state maps (claims keyed (member, claim_id), days keyed (member, date of
service)); both are views into the member's record. A record is decoded from the table when a
batch first needs it, its parts only when the engine asks for them, and written back once per
batch: `writes` encodes the changed records, the processor delivers them to the table's
changelog, and `store` then writes them to the local store and records the changelog offsets as
persisted.

Claim index. Beside its member records the table holds one key per (claim id, member), value
empty: `claim_index_key` = 0xFF "c" claim_id 0xFF member_id. It lets a look-up by claim id
(stream_edits/runtime/web/lookups.py) find the member without the member id, which is the partition
key.
The byte 0xFF never occurs in UTF-8, so no member id (a member key is its UTF-8) and no claim id
can be mistaken for part of one; `is_member_key` tells them apart, and everything that reads the
table's keys as member ids skips index keys. An index key is written in the member's partition,
in the same batch's changelog messages as the member's record (right after it, so normally in
the same record batch) and through the same delivery path, so recovery restores it with the
table:
- a claim put in a batch whose index key is neither in the local store nor on its way there gets
  it written (first sight, and self-healing: a claim whose index key was lost, e.g. a batch whose
  record reached the changelog but whose index key did not, gets it the next time it is put);
- a claim entry dropped by expiry (`MemberRecord.expire`) gets its index key deleted.
A claim entry stored before the index existed is indexed when one of its lines next arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, cast

import orjson
from faust.types import StoreT, TableT
from faust.types.tuples import TP

from stream_edits.engine import ClaimEntry, DayState
from stream_edits.runtime.faust_compat import partition_database


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

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Write (or with None delete) a record in the local store."""

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

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        database = partition_database(self.table.data, partition)
        if database is not None:
            if value is None:
                database.delete(key)
            else:
                database.put(key, value)
        elif value is None:
            self.table.data.pop(key, None)
        else:
            self.table.data[key] = value

    def persisted(self, partition: int, offset: int) -> None:
        tp = TP(self.changelog_topic, partition)
        store = cast(StoreT[bytes, bytes], self.table.data)
        if self.table.app.in_transaction:  # exactly_once: persisted when the transaction commits
            self.table.app.tables.persist_offset_on_commit(store, tp, offset)
        else:
            store.set_persisted_offset(tp, offset)


INDEX_PREFIX = b"\xffc"  # 0xFF: never in UTF-8, so never in a member key
INDEX_SEPARATOR = b"\xff"
INDEX_VALUE = b""


def is_member_key(key: bytes) -> bool:
    """True for a member record's key, False for a claim index key."""
    return not key.startswith(INDEX_PREFIX)


def claim_index_prefix(claim_id: str) -> bytes:
    """The prefix of every index key of `claim_id` (one per member with that claim id)."""
    return INDEX_PREFIX + claim_id.encode() + INDEX_SEPARATOR


def claim_index_key(claim_id: str, member_id: str) -> bytes:
    """The index key saying that `member_id` has a claim entry `claim_id`."""
    return claim_index_prefix(claim_id) + member_id.encode()


def indexed_member(key: bytes, claim_id: str) -> str | None:
    """The member id an index key of `claim_id` names (None when it is not one of its keys)."""
    prefix = claim_index_prefix(claim_id)
    if not key.startswith(prefix) or len(key) == len(prefix):
        return None
    try:
        return key[len(prefix) :].decode()
    except UnicodeDecodeError:
        return None


@dataclass(slots=True)
class MemberWrite:
    """One member's record as written at the end of a batch; `value` None deletes it.

    With `index_key`, a claim index key of the member instead (value INDEX_VALUE, or None to
    delete it), in the member's partition; `earliest_day` is then the member record's.
    """

    partition: int  # the partition that owns the member: of its input, state and changelog
    member_id: str
    value: bytes | None
    earliest_day: int
    index_key: bytes | None = None

    @property
    def key(self) -> bytes:
        """The table key."""
        return self.member_id.encode() if self.index_key is None else self.index_key


class MemberRecord:
    """One member's state: claim entries, days, and per consumed topic-partition the last
    offset applied to them.

    `applied` is keyed by the consumed partition's name as the processor gives it (e.g. "i3"
    for input partition 3, "r3" for the repartition topic's): offsets of different partitions
    are never compared. `size` is the record's stored size in bytes (0 when new).
    """

    __slots__ = (
        "applied",
        "size",
        "_claims",
        "_days",
        "claims",
        "days",
        "changed_claims",
        "changed_days",
        "put_claims",
        "dropped_claims",
    )

    def __init__(self, raw: dict[str, Any] | None = None, size: int = 0) -> None:
        raw = raw or {}
        applied = raw.get("o")
        # A record stored before offsets were kept per partition held one int: dropped, its
        # records are then re-applied as exact redeliveries (which change nothing).
        self.applied: dict[str, int] = applied if isinstance(applied, dict) else {}
        self.size = size
        self._claims: dict[str, Any] = raw.get("c", {})  # wire forms, as stored
        self._days: dict[str, Any] = raw.get("d", {})
        self.claims: dict[str, ClaimEntry] = {}  # decoded on first use
        self.days: dict[date, DayState] = {}
        self.changed_claims: set[str] = set()  # put since the last encoding
        self.changed_days: set[date] = set()
        # For the claim index: claims put, and claims dropped by expiry, since `claim_changes`.
        self.put_claims: set[str] = set()
        self.dropped_claims: set[str] = set()

    def has_claim(self, claim_id: str) -> bool:
        """True when the record holds a claim entry `claim_id` (decoded or not)."""
        return claim_id in self.claims or claim_id in self._claims

    def claim_ids(self) -> list[str]:
        """Every claim id the record holds, sorted."""
        return sorted(self.claims.keys() | self._claims.keys())

    def claim(self, claim_id: str) -> ClaimEntry | None:
        """The claim entry, decoded on first use."""
        entry = self.claims.get(claim_id)
        if entry is None and claim_id in self._claims:
            entry = self.claims[claim_id] = ClaimEntry.from_wire(self._claims[claim_id], claim_id)
        return entry

    def day(self, dos: date) -> DayState | None:
        """The patient-day, decoded on first use."""
        state = self.days.get(dos)
        if state is None:
            wire = self._days.get(dos.isoformat())
            if wire is not None:
                state = self.days[dos] = DayState.from_wire(wire)
        return state

    def put_claim(self, claim_id: str, entry: ClaimEntry) -> None:
        """Set a claim entry (encoded at the next `stored`)."""
        self.claims[claim_id] = entry
        self.changed_claims.add(claim_id)
        self.put_claims.add(claim_id)

    def put_day(self, dos: date, state: DayState) -> None:
        """Set a patient-day (encoded at the next `stored`)."""
        self.days[dos] = state
        self.changed_days.add(dos)

    def expire(self, cutoff: int) -> int:
        """Drop claim entries and days last touched before `cutoff` (a day ordinal)."""
        self._sync()
        old_claims = [c for c, wire in self._claims.items() if wire[-1] < cutoff]
        old_days = [d for d, wire in self._days.items() if wire[-1] < cutoff]
        for claim_id in old_claims:
            del self._claims[claim_id]
        self.dropped_claims.update(old_claims)
        for iso in old_days:
            del self._days[iso]
        self.claims.clear()
        self.days.clear()
        return len(old_claims) + len(old_days)

    def earliest_day(self) -> int:
        """The earliest `last_day` over this member's claim entries and days (0 when empty)."""
        self._sync()
        return self._earliest_synced()

    def _earliest_synced(self) -> int:
        days = [wire[-1] for wire in self._claims.values()]
        days.extend(wire[-1] for wire in self._days.values())
        return min(days, default=0)

    def claim_changes(self) -> tuple[list[str], list[str]]:
        """For the claim index, and forgotten: the claims put since the last call that the
        record still holds, and those dropped by expiry that it no longer holds (sorted)."""
        put = sorted(c for c in self.put_claims if self.has_claim(c))
        dropped = sorted(c for c in self.dropped_claims if not self.has_claim(c))
        self.put_claims.clear()
        self.dropped_claims.clear()
        return put, dropped

    @property
    def empty(self) -> bool:
        """True when nothing is left to keep."""
        return not (self._claims or self._days or self.claims or self.days)

    def _sync(self) -> None:
        """Encode the parts put since the last encoding into the wire forms."""
        for claim_id in self.changed_claims:
            self._claims[claim_id] = self.claims[claim_id].to_wire()
        for dos in self.changed_days:
            self._days[dos.isoformat()] = self.days[dos].to_wire()
        self.changed_claims.clear()
        self.changed_days.clear()

    def to_bytes(self) -> bytes:
        """The record as stored: orjson of {o: applied offsets, c: claims, d: days}."""
        self._sync()
        return orjson.dumps({"o": self.applied, "c": self._claims, "d": self._days})

    def stored(self) -> tuple[bytes, int]:
        """The record as stored and its earliest `last_day`, encoding its parts once."""
        value = self.to_bytes()
        return value, self._earliest_synced()


class MemberCache:
    """Write-back cache of member records over a `MemberTable` of raw bytes keyed by member_id.

    A record stays decoded while a write of it is on its way to the changelog (the table does
    not have it yet), and beyond that for up to `capacity` members, the oldest stored ones
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
        self._dirty[member_id] = self.owner(member_id)

    def writes(self) -> list[MemberWrite]:
        """Encode every changed record (an empty one as a deletion), each followed by its claim
        index changes, and forget the batch."""
        writes = []
        for member_id, partition in self._dirty.items():
            self._unstored[member_id] = self._unstored.get(member_id, 0) + 1
            record = self._records[member_id]
            if record.empty:
                earliest_day = 0
                writes.append(MemberWrite(partition, member_id, None, 0))
            else:
                value, earliest_day = record.stored()
                record.size = len(value)
                writes.append(MemberWrite(partition, member_id, value, earliest_day))
            put, dropped = record.claim_changes()
            for claim_id in put:
                key = claim_index_key(claim_id, member_id)
                if not self._indexed(partition, key):
                    writes.append(self._index_write(partition, member_id, key, earliest_day))
            for claim_id in dropped:
                key = claim_index_key(claim_id, member_id)
                writes.append(self._index_write(partition, member_id, key, earliest_day, False))
        self._dirty.clear()
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
        return MemberWrite(partition, member_id, value, earliest_day, key)

    def store(self, writes: Sequence[MemberWrite], changelog_offsets: Mapping[int, int]) -> None:
        """Write delivered records to the local store; persist the changelog offsets reached."""
        for write in writes:
            member_id = write.member_id
            self.table.put(write.partition, write.key, write.value)
            if write.index_key is not None:
                present, left_writes = self._index_unstored.pop(write.index_key, (True, 1))
                if left_writes > 1:
                    self._index_unstored[write.index_key] = (present, left_writes - 1)
                continue
            left = self._unstored[member_id] - 1
            if left:
                self._unstored[member_id] = left
            else:
                del self._unstored[member_id]
                record = self._records.get(member_id)
                if record is not None and record.empty and member_id not in self._dirty:
                    del self._records[member_id]
        for partition, offset in changelog_offsets.items():
            self.table.persisted(partition, offset)
        excess = len(self._records) - self.capacity
        if excess > 0:  # the oldest first (insertion order), never one with a change to store
            pending = self._dirty.keys() | self._unstored.keys()
            for member_id in [m for m in self._records if m not in pending][:excess]:
                del self._records[member_id]

    def forget(self) -> None:
        """Drop every cached record (after a rebalance the table is the truth)."""
        self._records.clear()
        self._dirty.clear()
        self._unstored.clear()
        self._index_unstored.clear()

    def dirty_ids(self) -> list[str]:
        """Members changed in the batch in the making."""
        return list(self._dirty)

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
