"""What the worker's telemetry costs: `Processor.process_batch` over a synthetic workload with and
without a `Telemetry` observer, interleaved in one run, best of several each.

The producer and member table are the unit tests' fakes, so the ratio is of CPU spent in the
processor alone (a real broker round trip would only make it smaller).

    .venv/bin/python scripts/bench_telemetry.py --lines 40000 --rounds 8
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from faust.types import TP

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package

from stream_edits.runtime.processor import Stats  # noqa: E402
from stream_edits.runtime.telemetry import Telemetry  # noqa: E402
from stream_edits_dev.bench.workload import generate  # noqa: E402
from tests.unit.runtime.fakes import DictTable, FakeRecord, fake_processor  # noqa: E402

BATCH = 1000


async def drain(records: list[FakeRecord], observed: bool) -> float:
    """Seconds to process every record in batches of BATCH."""
    processor = fake_processor(DictTable(), observer=Telemetry(Stats, "v") if observed else None)
    began = time.perf_counter()
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        await processor.process_batch(batch, {TP("claim-lines", 0): start + len(batch)})
    await processor.settle()
    return time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    records = [FakeRecord(i, value) for i, value in enumerate(generate(args.lines))]
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.rounds):
        for observed in (False, True):
            best[observed] = min(best[observed], await drain(records, observed))
    print(
        f"{args.lines} lines, best of {args.rounds}: without telemetry {best[False]:.3f} s, "
        f"with {best[True]:.3f} s, ratio {best[True] / best[False]:.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
