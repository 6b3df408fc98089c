"""exactly_once on the real broker: when a worker leaves, the worker that takes its partitions
over restores their member state from the changelog first; after a kill -9, a read_committed
consumer reads every decision once.

Under exactly_once Faust asked its read_committed consumer where a changelog ends, and after a
rebalance that answer was unknown and read as "empty": the next owner skipped the restore and
decided with the state it had before the other worker joined. And Faust commits a transaction on
its own timer, with every output appended so far: outputs of batches whose offsets were not yet
processed were committed, and after a kill -9 their records were replayed and their decisions
published again; the local store held state of the aborted transaction, so replayed records were
restated with their whole patient-day.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits_dev.bench.workload import generate
from tests.integration.stream_harness import StreamRig, expected_verdicts

pytestmark = pytest.mark.broker

READY = re.compile(r"\[\^Worker\]: Ready")
RESTORING = "Restoring state from changelog topics"


async def wait_for_log(path: Path, pattern: re.Pattern[str], count: int, timeout: float) -> None:
    """Until `pattern` occurs `count` times in the log at `path`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(pattern.findall(path.read_text(errors="replace"))) >= count:
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"{pattern.pattern!r} not {count} times in {path.name}", pytrace=False)


async def test_a_worker_leaving_under_exactly_once_changes_no_decision(
    rig: StreamRig, tmp_path: Path
) -> None:
    rig.extra_env["STREAM_EDITS_PROCESSING_GUARANTEE"] = "exactly_once"
    # Few members and many voids and replacements (8% each): the last third voids and replaces
    # claims the second worker decided in the second, as the first worker knows only if it restores.
    lines = generate(4_500, seed=17, members=120, void_rate=0.08, replacement_rate=0.08)
    thirds = [lines[:1_500], lines[1_500:3_000], lines[3_000:]]
    first = rig.start_worker()
    await rig.produce(thirds[0])
    so_far = expected_verdicts(thirds[0])
    assert await rig.verdicts(so_far, timeout=90) == so_far, rig.logs()

    second = rig.start_worker()  # takes over partitions whose state the first worker wrote
    await wait_for_log(tmp_path / "worker-1.log", READY, 1, timeout=90)
    await rig.produce(thirds[1])
    so_far = expected_verdicts(thirds[0] + thirds[1])
    assert await rig.verdicts(so_far, timeout=90) == so_far, rig.logs()

    second.send_signal(signal.SIGTERM)  # leaves: its partitions go back to the first worker
    second.wait(timeout=30)
    await rig.produce(thirds[2])
    expected = expected_verdicts(lines)
    got = await rig.verdicts(expected, timeout=120)

    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, (len(wrong), "(expected, got):", list(wrong.items())[:5], rig.logs())
    assert first.poll() is None, rig.logs()  # no crash, no restart
    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert log.count(RESTORING) >= 2, log[-3000:]  # the partitions it got back were restored
    assert "one worker only" not in log


async def test_after_a_kill_9_a_read_committed_consumer_reads_each_decision_once(
    rig: StreamRig,
) -> None:
    rig.extra_env["STREAM_EDITS_PROCESSING_GUARANTEE"] = "exactly_once"
    # No redelivered lines: any (line, revision) read twice is a decision published twice.
    lines = generate(9_000, seed=23, members=600, redelivery_rate=0.0)
    expected = expected_verdicts(lines)
    worker = rig.start_worker()
    await rig.produce(lines[:300])
    assert await _committed(rig, lambda values: len(values) >= 250, 120), rig.logs()
    # Lines arriving steadily (1,500 a second), and a kill -9 in the middle of them: some
    # transactions committed, one open, batches on their way.
    for start in range(300, 9_000, 300):
        if start == 4_800:
            rig.kill(worker)
            worker = rig.start_worker()
        await rig.produce(lines[start : start + 300])
        await asyncio.sleep(0.2)
    assert await rig.verdicts(expected, timeout=180) == expected, rig.logs()

    values = await _committed(rig, lambda found: False, 10)  # everything committed by now
    seen: dict[tuple[str, int, int], int] = {}
    for value in values:
        line = (value["claim_id"], value["line_number"], value["revision"])
        seen[line] = seen.get(line, 0) + 1
    twice = {line: n for line, n in seen.items() if n > 1}
    assert not twice, (len(twice), list(twice.items())[:5], rig.logs())


async def _committed(
    rig: StreamRig, done: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Every committed decision on the output topic (read_committed), until `done` or `timeout`."""
    consumer = AIOKafkaConsumer(
        rig.settings.output_topic,
        **kafka_client_kwargs(rig.settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(values):
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                values.extend(orjson.loads(r.value) for r in records if r.value)
        return values
    finally:
        await consumer.stop()
