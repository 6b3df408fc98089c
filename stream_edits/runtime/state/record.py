"""A member's stored state: `MemberRecord` (claim entries, patient-days and the offsets applied,
as one orjson record) and `MemberWrite`, a record or claim index key as written at a batch's end.

One record per member, so a batch's writes for a member land together or not at all. A record's
parts are decoded only when the engine asks for them, and only the parts a batch changed are
encoded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from stream_edits.engine import ClaimEntry, DayState
from stream_edits.kept_json import dumps_kept


@dataclass(slots=True)
class MemberWrite:
    """One member's record as written at the end of a batch; `value` None deletes it.

    With `index`, a claim index key of the member instead (value claim_index.INDEX_VALUE, or
    None to delete it), in the member's partition; `earliest_day` is then the member record's.
    """

    partition: int  # the partition that owns the member: of its input, state and changelog
    member_id: str
    value: bytes | None
    earliest_day: int
    key: bytes  # the table key: the member id's UTF-8, or a claim index key
    index: bool = False  # `key` is a claim index key


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
        return dumps_kept({"o": self.applied, "c": self._claims, "d": self._days})

    def stored(self) -> tuple[bytes, int]:
        """The record as stored and its earliest `last_day`, encoding its parts once."""
        value = self.to_bytes()
        return value, self._earliest_synced()
