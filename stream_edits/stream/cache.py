"""Member state over one Faust table: the engine's claim entries and patient-days of a member,
stored as one record so a batch's writes for a member land together or not at all.

The engine sees two state maps (claims keyed (member, claim_id), days keyed (member, date of
service)); both are views into the member's record. A record is decoded from the table once per
batch, its parts decoded only when the engine asks for them, and written back once at `flush`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from faust.types import EventT, TableT

from stream_edits.engine import ClaimEntry, DayState
from stream_edits.stream.faust_compat import bind_event


class MemberRecord:
    """One member's state: claim entries, days, and the last input offset applied to them."""

    __slots__ = ("applied_offset", "_claims", "_days", "claims", "days")

    def __init__(self, raw: dict[str, Any] | None = None) -> None:
        raw = raw or {}
        self.applied_offset: int = raw.get("o", -1)
        self._claims: dict[str, Any] = raw.get("c", {})
        self._days: dict[str, Any] = raw.get("d", {})
        self.claims: dict[str, ClaimEntry] = {}
        self.days: dict[date, DayState] = {}

    def claim(self, claim_id: str) -> ClaimEntry | None:
        """The claim entry, decoded on first use."""
        entry = self.claims.get(claim_id)
        if entry is None and claim_id in self._claims:
            entry = self.claims[claim_id] = ClaimEntry.from_wire(self._claims[claim_id])
        return entry

    def day(self, dos: date) -> DayState | None:
        """The patient-day, decoded on first use."""
        state = self.days.get(dos)
        if state is None:
            wire = self._days.get(dos.isoformat())
            if wire is not None:
                state = self.days[dos] = DayState.from_wire(wire)
        return state

    def expire(self, cutoff: int) -> int:
        """Drop claim entries and days last touched before `cutoff` (a day ordinal)."""
        self._sync()
        old_claims = [c for c, wire in self._claims.items() if wire[-1] < cutoff]
        old_days = [d for d, wire in self._days.items() if wire[-1] < cutoff]
        for claim_id in old_claims:
            del self._claims[claim_id]
        for iso in old_days:
            del self._days[iso]
        self.claims.clear()
        self.days.clear()
        return len(old_claims) + len(old_days)

    def earliest_day(self) -> int:
        """The earliest `last_day` over this member's claim entries and days (0 when empty)."""
        self._sync()
        days = [wire[-1] for wire in self._claims.values()]
        days.extend(wire[-1] for wire in self._days.values())
        return min(days, default=0)

    @property
    def empty(self) -> bool:
        """True when nothing is left to keep."""
        return not (self._claims or self._days or self.claims or self.days)

    def _sync(self) -> None:
        for claim_id, entry in self.claims.items():
            self._claims[claim_id] = entry.to_wire()
        for dos, state in self.days.items():
            self._days[dos.isoformat()] = state.to_wire()

    def to_bytes(self) -> bytes:
        """The record as stored: orjson of {o: offset, c: claims, d: days}."""
        self._sync()
        return orjson.dumps({"o": self.applied_offset, "c": self._claims, "d": self._days})


class MemberCache:
    """Write-back cache of member records over a Faust table of raw bytes keyed by member_id.

    Reads happen bound to the event being processed (its partition owns the member); `flush`
    writes each dirty record once, bound to an event of that member, so the RocksDB partition
    store and the changelog partition are the member's.
    """

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table
        self._records: dict[str, MemberRecord] = {}
        self._dirty: dict[str, EventT[bytes]] = {}
        self.claims = _ClaimsView(self)
        self.days = _DaysView(self)
        self.event: EventT[bytes] | None = None  # the event being processed, set by the processor

    def record(self, member_id: str) -> MemberRecord:
        """The member's record, read from the table on first use in this batch."""
        record = self._records.get(member_id)
        if record is None:
            raw = self.table.get(member_id.encode())
            record = MemberRecord(None if raw is None else orjson.loads(raw))
            self._records[member_id] = record
        return record

    def mark(self, member_id: str) -> None:
        """Write this member's record at the next flush."""
        assert self.event is not None, "set MemberCache.event before processing an event"
        self._dirty[member_id] = self.event

    def flush(self) -> list[tuple[int, str, int]]:
        """Write every dirty record once (an empty one is deleted); forget the batch.

        Returns (partition, member_id, earliest last_day) of every record still stored.
        """
        kept: list[tuple[int, str, int]] = []
        for member_id, event in self._dirty.items():
            bind_event(event)
            record = self._records[member_id]
            if record.empty:
                self.table.pop(member_id.encode(), None)
            else:
                self.table[member_id.encode()] = record.to_bytes()
                kept.append((event.message.partition, member_id, record.earliest_day()))
        self._dirty.clear()
        self._records.clear()
        return kept

    def dirty_ids(self) -> list[str]:
        """Members changed in this batch and not yet written."""
        return list(self._dirty)

    def member_ids(self) -> list[str]:
        """Members stored on the partitions this worker owns, or cached in this batch."""
        stored = {key.decode() for key in self.table}
        return sorted(stored.union(self._records))


class _ClaimsView:
    """The engine's claims map: (member_id, claim_id) → ClaimEntry."""

    def __init__(self, cache: MemberCache) -> None:
        self._cache = cache

    def get(self, key: tuple[str, str]) -> ClaimEntry | None:
        return self._cache.record(key[0]).claim(key[1])

    def __setitem__(self, key: tuple[str, str], value: ClaimEntry) -> None:
        self._cache.record(key[0]).claims[key[1]] = value
        self._cache.mark(key[0])


class _DaysView:
    """The engine's days map: (member_id, date of service) → DayState."""

    def __init__(self, cache: MemberCache) -> None:
        self._cache = cache

    def get(self, key: tuple[str, date]) -> DayState | None:
        return self._cache.record(key[0]).day(key[1])

    def __setitem__(self, key: tuple[str, date], value: DayState) -> None:
        self._cache.record(key[0]).days[key[1]] = value
        self._cache.mark(key[0])
