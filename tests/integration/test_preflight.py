"""The worker's start-up check on the real broker: co-partitioned topics that can take what it
writes, or one clear line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_edits.kafka.admin import create_topics, partition_counts
from stream_edits.kafka.preflight import PreflightError, changelog_topic, check_topics
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings

pytestmark = pytest.mark.broker
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(bootstrap_servers: str, unique_name: str) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap_servers,
        input_topic=f"lines-{unique_name}",
        output_topic=f"edits-{unique_name}",
        dlq_topic=f"dlq-{unique_name}",
        app_id=f"app-{unique_name}",
    )


async def _create(settings: Settings, name: str, partitions: int, **configs: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


def _worker(settings: Settings, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAM_EDITS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "STREAM_EDITS_INPUT_TOPIC": settings.input_topic,
        "STREAM_EDITS_OUTPUT_TOPIC": settings.output_topic,
        "STREAM_EDITS_DLQ_TOPIC": settings.dlq_topic,
        "STREAM_EDITS_APP_ID": settings.app_id,
        "STREAM_EDITS_DATA_DIR": str(tmp_path / "worker"),
    }
    command = [sys.executable, "-m", "stream_edits", "worker"]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_contract_topics_pass_and_the_internal_topics_are_created_to_fit(
    settings: Settings,
) -> None:
    await create_topics(settings)
    await check_topics(settings)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        counts = await partition_counts(admin)
    finally:
        await admin.close()
    assert counts[settings.repartition_topic] == counts[changelog_topic(settings)] == 4


async def test_a_changelog_with_another_partition_count_stops_the_worker_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    await _create(settings, changelog_topic(settings), 3, **{"cleanup.policy": "compact"})
    with pytest.raises(PreflightError, match="not co-partitioned"):
        await check_topics(settings)
    done = _worker(settings, tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "not co-partitioned" in line and f"{changelog_topic(settings)} has 3" in line


async def test_an_input_topic_taking_larger_records_than_the_worker_can_forward_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    await _create(settings, settings.input_topic, 4, **{"max.message.bytes": "5000000"})
    await create_topics(settings)
    done = _worker(settings, tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "accepts records up to 5000000 bytes" in line and "MAX_MESSAGE_BYTES" in line


async def test_a_missing_input_topic_says_how_to_create_it(
    settings: Settings, tmp_path: Path
) -> None:
    done = _worker(settings, tmp_path)
    assert done.returncode == 2
    assert "run `stream-edits topics create`" in done.stderr
