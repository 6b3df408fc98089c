"""Measure `stream-edits check` throughput on one core against parse-only baselines.

Generates a synthetic workload (stream_edits_dev.bench.workload) into a temporary NDJSON file, then
times, best of several runs after a warm-up, each reading the whole file:

  orjson    read the lines and orjson.loads each one (the floor of any JSON pipeline)
  pydantic  read the lines and ClaimLineEvent.model_validate_json each one (validation alone)
  check     stream_edits.jobs.check.final_decisions over the lines (validation + engine)

    .venv/bin/python scripts/bench_check.py --lines 200000 --json bench-results/check.json
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from stream_edits.jobs.check import final_decisions
from stream_edits.models import ClaimLineEvent
from stream_edits.rules.loader import load_rules
from stream_edits.rules.tables import RuleSet
from stream_edits_dev.bench.workload import generate

TARGET_LINES_PER_SECOND = 100_000


def _per_line(parse: Callable[[bytes], object]) -> Callable[[Path], int]:
    """A baseline that applies `parse` to every line of the file and counts them."""

    def run(path: Path) -> int:
        count = 0
        with open(path, "rb") as handle:
            for raw in handle:
                parse(raw)
                count += 1
        return count

    return run


_orjson_only = _per_line(orjson.loads)
_pydantic_only = _per_line(ClaimLineEvent.model_validate_json)


def _check(path: Path, rules: RuleSet) -> int:
    with open(path, "rb") as handle:
        return len(final_decisions(handle, rules))


def _best_run(run: Callable[[Path], Any], path: Path, repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the run with the least CPU time, after a warm-up.

    Everything runs in this one thread, so CPU time is time on one core; unlike wall time it
    does not count the time other processes hold the core.
    """
    run(path)  # warm-up: imports, caches, page cache
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        run(path)
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="events in the workload")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write results")
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.repeat < 1:
        parser.error("--lines and --repeat must be >= 1")

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    started = time.perf_counter()
    events = generate(args.lines, seed=args.seed)
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "workload.ndjson"
        path.write_bytes(b"".join(event + b"\n" for event in events))
        del events
        timings = {
            name: _best_run(run, path, args.repeat)
            for name, run in (
                ("orjson", _orjson_only),
                ("pydantic", _pydantic_only),
                ("check", partial(_check, rules=load_rules())),
            )
        }

    seconds = {name: cpu for name, (cpu, _) in timings.items()}
    wall = {name: w for name, (_, w) in timings.items()}
    rate = {name: args.lines / s for name, s in seconds.items()}
    ratios = {
        "check/orjson": seconds["check"] / seconds["orjson"],
        "check/pydantic": seconds["check"] / seconds["pydantic"],
        "pydantic/orjson": seconds["pydantic"] / seconds["orjson"],
    }
    print(f"workload: {args.lines:,} lines, seed {args.seed}, generated in {generated:.2f} s")
    print(f"python {platform.python_version()}, one thread, best of {args.repeat} by CPU time")
    print(f"{'measurement':<12}{'cpu s':>8}{'wall s':>8}{'lines/s (cpu)':>15}")
    for name in seconds:
        print(f"{name:<12}{seconds[name]:>8.3f}{wall[name]:>8.3f}{rate[name]:>15,.0f}")
    for name, value in ratios.items():
        print(f"{name:<16} {value:6.2f}x the CPU time")
    met = rate["check"] >= TARGET_LINES_PER_SECOND
    verdict = "meets" if met else "misses"
    print(f"check {verdict} the target of {TARGET_LINES_PER_SECOND:,} lines/s on one core")

    if args.json is not None:
        result = {
            "lines": args.lines,
            "seed": args.seed,
            "repeat": args.repeat,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": args.cpu,
            "cpu_seconds": seconds,
            "wall_seconds": wall,
            "lines_per_second": rate,
            "time_ratios": ratios,
            "target_lines_per_second": TARGET_LINES_PER_SECOND,
            "meets_target": met,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
