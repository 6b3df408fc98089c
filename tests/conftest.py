"""Fixtures shared by every test tier: the real broker's address and unique names."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from stream_edits.settings import Settings
from stream_edits_dev.broker.local import broker_answers


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """The real broker (STREAM_EDITS_BOOTSTRAP_SERVERS, default 127.0.0.1:9092); fails if silent."""
    servers = Settings().bootstrap_servers
    # A worker thread keeps the probe's own event loop clear of any loop pytest-asyncio runs.
    with ThreadPoolExecutor(max_workers=1) as pool:
        cluster = pool.submit(broker_answers, servers, 10.0).result()
    if cluster is None:
        pytest.fail(
            f"no Kafka broker answers at {servers}: start one with "
            "`.venv/bin/stream-edits kafka start` (or point STREAM_EDITS_BOOTSTRAP_SERVERS at one)",
            pytrace=False,
        )
    return servers


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group suffix unique to this test run: a short test name plus 12 hex digits."""
    stem = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:40].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:12]}"
