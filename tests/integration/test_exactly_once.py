"""exactly_once with more than one worker on the real broker: when a worker leaves, the worker
that takes its partitions over restores their member state from the changelog first.

Under exactly_once Faust asked its read_committed consumer where a changelog ends, and after a
rebalance that answer was unknown and read as "empty": the next owner skipped the restore and
decided with the state it had before the other worker joined.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest

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
