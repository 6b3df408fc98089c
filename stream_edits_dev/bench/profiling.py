"""Summaries of py-spy's raw (collapsed-stack) profiles: where a pipeline's main thread goes.

`py-spy record --threads --idle --format raw` writes one line per distinct stack:
`thread (TID): NAME;frame;frame;... COUNT`, each frame `function (file:line)`. Shares here are of
the main thread's samples (wall time, idle included) and of its busy samples. Non-blocking
sampling reads some stacks while they change, so they come out cut short of their root: self
time counts every sample's leaf, inclusive time only the stacks read whole (scaled to all busy
samples).

    python -m stream_edits_dev.bench.profiling bench-results/profile-processor.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_THREAD = re.compile(r"^thread \((\d+)\)(?::\s*(.*))?$")
_LINE = re.compile(r":\d+\)$")
# Leaf frames where a thread waits rather than runs Python code.
_IDLE_LEAVES = {
    ("select", "selectors.py"),
    ("wait", "threading.py"),
    ("_wait_for_tstate_lock", "threading.py"),
}


@dataclass
class ThreadProfile:
    """The samples of one thread."""

    name: str
    samples: int = 0
    idle: int = 0
    whole: int = 0  # busy samples whose stack reaches the thread's root frame
    self_counts: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    stacks: list[tuple[list[str], int]] = field(default_factory=list)

    @property
    def busy(self) -> int:
        """Samples running (or waiting on the GIL in) Python code."""
        return self.samples - self.idle


def _is_idle(leaf: str) -> bool:
    """True when the leaf frame waits (the event loop's select, a lock) instead of running."""
    name, _, where = leaf.partition(" (")
    return (name.rsplit(".", 1)[-1], where.split(":", 1)[0]) in _IDLE_LEAVES


def _function(frame: str) -> str:
    """`func (file:line)` → `func (file)`: one entry per function, whatever the line."""
    return _LINE.sub(")", frame)


def parse(text: str) -> dict[int, ThreadProfile]:
    """Thread id → its profile, from py-spy raw output."""
    threads: dict[int, ThreadProfile] = {}
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, *frames = stack.split(";")
        match = _THREAD.match(head)
        if match is None:
            continue
        tid = int(match.group(1))
        thread = threads.setdefault(tid, ThreadProfile(match.group(2) or ""))
        if match.group(2) and not thread.name:
            thread.name = match.group(2)
        thread.samples += count
        if not frames or _is_idle(frames[-1]):
            thread.idle += count
            continue
        thread.self_counts[_function(frames[-1])] += count
        thread.stacks.append((frames, count))
    for thread in threads.values():
        roots: Counter[str] = Counter()
        for frames, count in thread.stacks:
            roots[frames[0]] += count
        root = roots.most_common(1)[0][0] if roots else ""
        for frames, count in thread.stacks:
            if frames[0] != root:
                continue
            thread.whole += count
            for function in {_function(frame) for frame in frames}:
                thread.inclusive[function] += count
        thread.stacks.clear()
    return threads


def main_thread(threads: dict[int, ThreadProfile], pid: int | None = None) -> ThreadProfile:
    """The main thread: its id is the process id, or it is named MainThread."""
    if pid is not None and pid in threads:
        return threads[pid]
    named = [t for t in threads.values() if t.name == "MainThread"]
    if named:
        return named[0]
    return max(threads.values(), key=lambda t: t.samples)


def summary(text: str, top: int = 15, pid: int | None = None) -> dict[str, Any]:
    """Busy share per thread and the main thread's top functions by self and inclusive time."""
    threads = parse(text)
    if not threads:
        return {"threads": [], "main": None}
    main = main_thread(threads, pid)

    def rows(counts: Counter[str], scale: float) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "pct_of_main": round(100 * n * scale / main.samples, 1),
                "pct_of_main_busy": round(100 * n * scale / main.busy, 1) if main.busy else 0.0,
            }
            for name, n in counts.most_common(top)
        ]

    whole_scale = main.busy / main.whole if main.whole else 0.0

    return {
        "threads": [
            {
                "tid": tid,
                "name": t.name,
                "samples": t.samples,
                "busy_pct": round(100 * t.busy / t.samples, 1) if t.samples else 0.0,
            }
            for tid, t in sorted(threads.items(), key=lambda item: -item[1].busy)
        ],
        "main": {
            "samples": main.samples,
            "busy_pct": round(100 * main.busy / main.samples, 1) if main.samples else 0.0,
            "whole_stack_pct_of_busy": round(100 * main.whole / main.busy, 1) if main.busy else 0.0,
            "top_self": rows(main.self_counts, 1.0),
            "top_inclusive": rows(main.inclusive, whole_scale),
        },
    }


def format_summary(data: dict[str, Any]) -> str:
    """Plain-text rendering of `summary`."""
    out = []
    for thread in data["threads"]:
        out.append(
            f"thread {thread['tid']} {thread['name'] or '?'}: {thread['samples']} samples, "
            f"{thread['busy_pct']}% busy"
        )
    main = data["main"]
    if main is None:
        return "\n".join(out)
    out.append(
        f"main thread: {main['busy_pct']}% busy; "
        f"{main['whole_stack_pct_of_busy']}% of busy stacks read whole"
    )
    for title, key in (("self", "top_self"), ("inclusive", "top_inclusive")):
        out.append(f"main thread, top by {title} time (% of main samples, % of its busy samples):")
        for row in main[key]:
            out.append(
                f"  {row['pct_of_main']:5.1f}%  {row['pct_of_main_busy']:5.1f}%  {row['function']}"
            )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary of a py-spy raw profile."""
    parser = argparse.ArgumentParser(prog="python -m stream_edits_dev.bench.profiling")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(format_summary(summary(args.profile.read_text(), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
