"""Fixtures for stream tests on the real broker: a rig of unique topics and worker processes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from tests.integration.stream_harness import StreamRig


@pytest.fixture
async def rig(bootstrap_servers: str, unique_name: str, tmp_path: Path) -> AsyncIterator[StreamRig]:
    """A processor deployment with its own topics; its workers are stopped afterwards."""
    deployment = StreamRig(unique_name, tmp_path, bootstrap_servers)
    await deployment.create_topics()
    yield deployment
    deployment.stop_all()


def two_free_ports() -> tuple[int, int]:
    """Two distinct TCP ports nobody listens on right now."""
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Settings]:
    """A broker only this test uses; stopped afterwards, whatever happened."""
    port, controller_port = two_free_ports()
    settings = Settings(
        bootstrap_servers=f"127.0.0.1:{port}",
        kafka_port=port,
        kafka_controller_port=controller_port,
        kafka_data_dir=tmp_path / "kafka",
        kafka_heap="-Xms256m -Xmx512m",
    )
    assert local.start(settings, fresh=True) == 0
    try:
        yield settings
    finally:
        local.stop(settings)
