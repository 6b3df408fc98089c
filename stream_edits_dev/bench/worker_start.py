"""Seconds from `stream-edits worker` to a ready `/health/`, with the shipped and other rules.

Each start gets topics, a consumer group and a state directory of its own (deleted after), so it
joins an empty group on a fresh topic: what is measured is the worker's own start, its rules load
included. Starts with the two rule directories alternate, so the machine's drift hits both.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from stream_edits.kafka.admin import create_topics
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings
from stream_edits_dev.bench.measure import delete_topics

READY_TIMEOUT_S = 120.0


async def compare(
    settings: Settings, rules_dir: Path, cache_dir: Path, rounds: int = 3
) -> dict[str, Any]:
    """Alternated starts with the default rules and with `rules_dir`; seconds and medians.

    `rules_dir` is compiled into `cache_dir` first: the starts measure the warm path every worker
    after the first takes (the cold compile is measured on its own).
    """
    load_rules(rules_dir, cache_dir)
    default: list[float] = []
    other: list[float] = []
    for _ in range(rounds):
        default.append(await start_seconds(settings, None, cache_dir))
        other.append(await start_seconds(settings, rules_dir, cache_dir))
    return {
        "default_s": default,
        "cms_s": other,
        "median_default_s": round(statistics.median(default), 2),
        "median_cms_s": round(statistics.median(other), 2),
        "cms_vs_default": round(statistics.median(other) / statistics.median(default), 3),
    }


async def start_seconds(settings: Settings, rules_dir: Path | None, cache_dir: Path) -> float:
    """Start one worker on topics of its own; seconds until its `/health/` answers 200."""
    name = f"bench-start-{uuid.uuid4().hex[:10]}"
    own = settings.model_copy(
        update={
            "input_topic": f"{name}-lines",
            "output_topic": f"{name}-edits",
            "dlq_topic": f"{name}-dlq",
            "app_id": name,
        }
    )
    await create_topics(own)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="stream-edits-start-") as data_dir:
        env = {
            **os.environ,
            "STREAM_EDITS_BOOTSTRAP_SERVERS": own.bootstrap_servers,
            "STREAM_EDITS_INPUT_TOPIC": own.input_topic,
            "STREAM_EDITS_OUTPUT_TOPIC": own.output_topic,
            "STREAM_EDITS_DLQ_TOPIC": own.dlq_topic,
            "STREAM_EDITS_APP_ID": own.app_id,
            "STREAM_EDITS_DATA_DIR": data_dir,
            "STREAM_EDITS_WEB_HOST": "127.0.0.1",
            "STREAM_EDITS_WEB_PORT": str(port),
            "STREAM_EDITS_RULES_CACHE_DIR": str(cache_dir),
        }
        env.pop("STREAM_EDITS_RULES_DIR", None)
        if rules_dir is not None:
            env["STREAM_EDITS_RULES_DIR"] = str(rules_dir)
        started = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "stream_edits", "worker", "--loglevel", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return await _ready(port, worker, started)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            names = [own.input_topic, own.output_topic, own.dlq_topic]
            await delete_topics(settings, names, [f"{name}-"])


async def _ready(port: int, worker: subprocess.Popen[bytes], started: float) -> float:
    url = f"http://127.0.0.1:{port}/health/"
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} before it was ready")
        if await asyncio.to_thread(_answers_200, url):
            return round(time.perf_counter() - started, 2)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the worker was not ready within {READY_TIMEOUT_S:.0f} s")


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
