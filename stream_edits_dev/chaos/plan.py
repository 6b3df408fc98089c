"""The plan of a chaos run: its faults in order, each over a slice of the input at a moment.

Pure and deterministic: the same arguments give the same plan. Every step is one row of the
scoreboard. A step's slice of the input is produced while its fault happens; the fault strikes
when `moment` of the slice has been handed to the producers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """What happens to the deployment during a step."""

    NONE = "none"
    WORKER_KILL = "worker-kill"
    WORKER_JOIN = "worker-join"
    WORKER_LEAVE = "worker-leave"
    BROKER_KILL = "broker-kill"
    STATE_DELETED = "state-deleted"
    STALE_STATE = "stale-state"
    POISON = "poison"


# What `--faults` accepts: `join-leave` is the two steps of more workers coming and going.
KINDS: dict[str, tuple[Fault, ...]] = {
    "worker-kill": (Fault.WORKER_KILL,),
    "join-leave": (Fault.WORKER_JOIN, Fault.WORKER_LEAVE),
    "broker-kill": (Fault.BROKER_KILL,),
    "state-deleted": (Fault.STATE_DELETED,),
    "stale-state": (Fault.STALE_STATE,),
    "poison": (Fault.POISON,),
}

# The faults other than the worker kills, in the order they run; kills are interleaved.
_ORDER = (
    Fault.WORKER_JOIN,
    Fault.WORKER_LEAVE,
    Fault.BROKER_KILL,
    Fault.STATE_DELETED,
    Fault.STALE_STATE,
    Fault.POISON,
)

_LABELS = {
    Fault.NONE: "none (baseline)",
    Fault.BROKER_KILL: "broker kill -9, restart",
    Fault.STATE_DELETED: "state deleted, full restore",
    Fault.STALE_STATE: "stale state of an earlier broker",
    Fault.POISON: "poison burst",
}

# The fault strikes somewhere in the middle of its slice, never at its very edges.
MOMENT_RANGE = (0.15, 0.85)


@dataclass(frozen=True)
class Step:
    """One fault over the workload lines [start, stop), striking at `moment` of the slice."""

    fault: Fault
    label: str
    start: int
    stop: int
    moment: float

    @property
    def lines(self) -> int:
        """Workload lines in this step's slice."""
        return self.stop - self.start


def parse_kinds(text: str) -> list[str]:
    """The fault kinds named in a comma-separated `--faults` value; ValueError for unknown ones."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in KINDS]
    if unknown or not names:
        raise ValueError(
            f"--faults takes names from {','.join(KINDS)}, not {','.join(unknown) or 'nothing'}"
        )
    return names


def fault_order(kinds: list[str], kills: int) -> list[Fault]:
    """The faults in running order: a baseline, then the others with the kills interleaved.

    A kill comes before each other fault while kills remain, so one kill lands while two workers
    run (after the second joins) and the rest spread over the run.
    """
    others = [fault for fault in _ORDER if any(fault in KINDS[kind] for kind in kinds)]
    kills = kills if "worker-kill" in kinds else 0
    order = [Fault.NONE]
    for i in range(max(kills, len(others))):
        if i < kills:
            order.append(Fault.WORKER_KILL)
        if i < len(others):
            order.append(others[i])
    return order


def joiners(workers: int) -> str:
    """Who joins and leaves besides the first worker: `2nd worker`, `2nd and 3rd workers`."""
    ordinals = [f"{n}{'nd' if n == 2 else 'rd' if n == 3 else 'th'}" for n in range(2, workers + 1)]
    if len(ordinals) == 1:
        return f"{ordinals[0]} worker"
    return f"{', '.join(ordinals[:-1])} and {ordinals[-1]} workers"


def make_plan(lines: int, kinds: list[str], kills: int, seed: int, workers: int = 2) -> list[Step]:
    """The steps of a run over `lines` workload lines: equal slices, one fault each; the
    workers after the first join, and later leave, together."""
    join = f"{joiners(workers)} {'join' if workers > 2 else 'joins'}"
    leave = f"{joiners(workers)} {'leave' if workers > 2 else 'leaves'}"
    labels = {**_LABELS, Fault.WORKER_JOIN: join, Fault.WORKER_LEAVE: leave}
    faults = fault_order(kinds, kills)
    if lines < len(faults):
        raise ValueError(f"{lines} lines cannot be split over {len(faults)} steps")
    rng = random.Random(f"chaos-plan-{seed}")
    total_kills = faults.count(Fault.WORKER_KILL)
    steps, kill_number = [], 0
    for i, fault in enumerate(faults):
        start, stop = lines * i // len(faults), lines * (i + 1) // len(faults)
        if fault is Fault.WORKER_KILL:
            kill_number += 1
            label = f"worker kill -9 ({kill_number}/{total_kills})"
        else:
            label = labels[fault]
        steps.append(Step(fault, label, start, stop, round(rng.uniform(*MOMENT_RANGE), 3)))
    return steps
