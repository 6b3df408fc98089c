"""Which members may hold expired state: an in-memory index, so a sweep visits only those.

Each member is filed under the earliest `last_day` of its claim entries and patient-days. A
sweep pops the members filed before its cutoff and expires what is really idle; everyone else
is left alone. Entries may be stale (a member touched since is re-checked and re-filed), never
missing: every member written is filed, and a partition's index is built by one full scan the
first time it is swept after (re)assignment.
"""

from __future__ import annotations

import heapq


class ExpiryIndex:
    """Per partition, a heap of (earliest last_day, member_id)."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._filed: dict[str, int] = {}
        self._built: set[int] = set()

    def built(self, partition: int) -> bool:
        """True once the partition's members were all filed (by a full scan)."""
        return partition in self._built

    def mark_built(self, partition: int) -> None:
        """Record that a full scan filed every member of `partition`."""
        self._built.add(partition)

    def file(self, partition: int, member_id: str, earliest_day: int) -> None:
        """File a member under the earliest day its state was last touched."""
        filed = self._filed.get(member_id)
        if filed is None or earliest_day < filed:
            self._filed[member_id] = earliest_day
            heapq.heappush(self._heaps.setdefault(partition, []), (earliest_day, member_id))

    def due(self, partition: int, cutoff: int) -> list[str]:
        """Unfile and return the members filed before `cutoff` (a day ordinal), sorted."""
        heap = self._heaps.get(partition, [])
        due: set[str] = set()
        while heap and heap[0][0] < cutoff:
            day, member_id = heapq.heappop(heap)
            if self._filed.get(member_id) == day:
                del self._filed[member_id]
                due.add(member_id)
        return sorted(due)

    def reset(self) -> None:
        """Forget everything (after a rebalance the owned partitions may have changed)."""
        self._heaps.clear()
        self._filed.clear()
        self._built.clear()
