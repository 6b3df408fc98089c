"""The bench's replay measurement: `stream-edits replay` over the same backlog the pipelines
drain, in its own process, reporting the drain rate it measured itself (from its first read to
its last delivered decision, start-up excluded as for the pipelines)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream_edits.kafka.admin import create_topics
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings
from stream_edits_dev.bench.measure import BenchError, Workload, delete_topics, wait_for_leaders


async def measure_replay(settings: Settings, workload: Workload, run_id: str) -> dict[str, Any]:
    """Produce the backlog to a fresh topic, replay it, and return the replay's summary."""
    source, output = f"{run_id}-replay-in", f"{run_id}-replay-out"
    topics = settings.model_copy(
        update={"input_topic": source, "output_topic": output, "dlq_topic": f"{output}-dlq"}
    )
    await create_topics(topics)
    await wait_for_leaders(settings, [source, output])
    try:
        producer = AIOKafkaProducer(**kafka_client_kwargs(settings), linger_ms=5)
        await producer.start()
        try:
            for index in range(workload.backlog):
                await producer.send(source, workload.lines[index], key=workload.keys[index])
            await producer.flush()
        finally:
            await producer.stop()
        env = {**os.environ, "STREAM_EDITS_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
        command = [sys.executable, "-m", "stream_edits", "replay", "--source", source]
        command += ["--output-topic", output, "--json", "--no-progress"]
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise BenchError(f"replay exited {process.returncode}: {err.decode()[-500:]}")
        summary: dict[str, Any] = orjson.loads(out)
        return summary
    finally:
        await delete_topics(settings, [source, output, f"{output}-dlq"], [])
