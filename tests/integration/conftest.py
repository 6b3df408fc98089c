"""Fixtures for stream tests on the real broker: a rig of unique topics and worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.stream_harness import StreamRig


@pytest.fixture
async def rig(bootstrap_servers: str, unique_name: str, tmp_path: Path) -> AsyncIterator[StreamRig]:
    """A processor deployment with its own topics; its workers are stopped afterwards."""
    deployment = StreamRig(unique_name, tmp_path, bootstrap_servers)
    await deployment.create_topics()
    yield deployment
    deployment.stop_all()
