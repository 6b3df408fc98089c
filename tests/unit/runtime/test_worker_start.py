"""What `stream-edits worker` sets up in its process before Faust starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from stream_edits.runtime import worker
from stream_edits.settings import Settings


def test_the_worker_hands_the_gil_over_within_a_millisecond(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[float] = []

    async def topics_fit(settings: Settings) -> None:
        return None

    class StartedWorker:
        def __init__(self, app: Any, loglevel: str) -> None:
            pass

        def execute_from_commandline(self) -> None:
            started.append(sys.getswitchinterval())

    monkeypatch.setattr(worker, "check_topics", topics_fit)
    monkeypatch.setattr(worker.faust, "Worker", StartedWorker)
    before = sys.getswitchinterval()
    try:
        assert worker.run(Settings(data_dir=tmp_path / "state")) == 0
    finally:
        sys.setswitchinterval(before)
    assert started == [pytest.approx(worker.GIL_SWITCH_S)]
    assert worker.GIL_SWITCH_S < 0.005  # shorter than CPython's default
