"""A worker whose local state outlives its broker heals itself: after the broker is wiped (`kafka
start --fresh`) and the topics created again, the same worker data dir decides new input.

Runs its own broker (Java and the Kafka jars, as `stream-edits kafka start` needs) on free ports,
since this test wipes it; the shared broker is not touched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_edits.runtime.state.healing import CLUSTER_ID_FILE
from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from tests.integration.stream_harness import StreamRig, expected_verdicts, free_port

pytestmark = pytest.mark.broker

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"
CLUSTER_WARNING = re.compile(r"\[WARNING\] Kafka cluster \S+ is not \S+, which the local tables")
TABLE_WARNING = re.compile(r"\[WARNING\] table members: local state is ahead of changelog ")


@pytest.fixture
def wipeable_broker(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a broker of this test's own, stopped at the end."""
    settings = Settings(
        kafka_data_dir=tmp_path / "kafka",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )
    if local.start(settings) != 0:
        pytest.fail("could not start a broker of the test's own (see stderr)", pytrace=False)
    try:
        yield settings
    finally:
        local.stop(settings)


async def test_a_worker_decides_new_input_after_its_broker_is_wiped(
    wipeable_broker: Settings, unique_name: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "worker-state"
    rig = StreamRig(
        unique_name,
        tmp_path,
        f"127.0.0.1:{wipeable_broker.kafka_port}",
        extra_env={"STREAM_EDITS_DATA_DIR": str(state_dir)},  # the same for every worker
    )
    lines = (SAMPLES / "claim-lines.ndjson").read_bytes().splitlines()
    expected = expected_verdicts(lines)

    async def decide_samples() -> str:
        """Start a worker on the state dir, decide the samples, stop it; its log."""
        await rig.create_topics()
        worker = rig.start_worker()
        try:
            await rig.produce(lines)
            assert await rig.verdicts(expected, timeout=60) == expected, rig.logs()
            assert worker.poll() is None, rig.logs()  # decided by this worker, no restart
        finally:
            rig.stop_all()
        return (tmp_path / f"worker-{len(rig.workers) - 1}.log").read_text(errors="replace")

    async def wipe_broker() -> None:
        # In a thread: start waits for the broker with event loops of its own.
        assert await asyncio.to_thread(local.start, wipeable_broker, fresh=True) == 0

    try:
        first = await decide_samples()
        assert not CLUSTER_WARNING.search(first) and not TABLE_WARNING.search(first), first

        # The broker is another cluster now: all local state goes, with one warning.
        await wipe_broker()
        second = await decide_samples()
        assert len(CLUSTER_WARNING.findall(second)) == 1, second
        assert not TABLE_WARNING.search(second), second

        # Again, without the remembered cluster id (state older than the check): the members
        # partitions are ahead of their recreated changelog, and go with one warning.
        await wipe_broker()
        for marker in state_dir.glob(f"*/{CLUSTER_ID_FILE}"):
            marker.unlink()
        third = await decide_samples()
        assert len(TABLE_WARNING.findall(third)) == 1, third
        assert not CLUSTER_WARNING.search(third), third
        assert "ConsistencyError" not in first + second + third
    finally:
        rig.stop_all()
