"""`stream-edits bench` on the real broker, small: every pipeline runs, the report has its shape."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.broker

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIPELINES = ("raw", "faust", "processor", "unkeyed", "two_workers")


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory, bootstrap_servers: str) -> Path:
    out = tmp_path_factory.mktemp("bench")
    # A subprocess, as a user runs it: the bench starts pipelines and event loops of its own.
    command = [sys.executable, "-m", "stream_edits", "bench", "--lines", "1000"]
    command += ["--rates", "200", "--latency-seconds", "2", "--quiet-seconds", "0.5"]
    command += ["--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=150, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


@pytest.fixture(scope="module")
def report(bench_report: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((bench_report / "bench.json").read_bytes())
    return data


def test_the_report_has_every_section(report: dict[str, Any]) -> None:
    assert {"config", "machine", "pipelines", "ratios", "check", "state", "targets"} <= set(report)
    assert set(report["pipelines"]) == set(PIPELINES)
    assert report["config"]["rates"] == [200]
    assert report["config"]["lines"] == 1000


def test_every_pipeline_drained_the_backlog_and_answered_every_paced_line(
    report: dict[str, Any],
) -> None:
    for name in PIPELINES:
        result = report["pipelines"][name]
        assert "error" not in result, result
        throughput = result["throughput"]
        assert positive(throughput["lines_per_s"]), (name, throughput)
        assert throughput["lines_done"] == 1000, (name, throughput)
        latency = result["latency"]["200"]
        assert latency["missing"] == 0, (name, latency)
        assert latency["expected"] == latency["answered"] > 0
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_the_ratios_are_computed_from_the_throughputs(report: dict[str, Any]) -> None:
    rate = {n: report["pipelines"][n]["throughput"]["lines_per_s"] for n in PIPELINES}
    ratios = report["ratios"]
    assert ratios["processor_vs_raw"] == pytest.approx(rate["processor"] / rate["raw"], rel=1e-3)
    assert ratios["processor_vs_faust"] == pytest.approx(
        rate["processor"] / rate["faust"], rel=1e-3
    )
    assert ratios["two_workers_vs_one"] == pytest.approx(
        rate["two_workers"] / rate["processor"], rel=1e-3
    )


def test_the_processors_report_where_their_batches_spent_their_time(
    report: dict[str, Any],
) -> None:
    for name, workers in (("processor", 1), ("two_workers", 2), ("unkeyed", 1)):
        result = report["pipelines"][name]
        assert result["workers"] == workers
        assert set(result["stages"]) == {"drain", "200"}
        paced = result["stages"]["200"]
        # Every batch of the paced run was fetched, queued, decided, delivered and stored.
        batches = paced["engine"]["count"]
        assert batches > 0, (name, paced)
        for stage in ("fetch", "inbox", "encode", "outputs", "changelog", "store"):
            assert paced[stage]["count"] >= batches - 1, (name, stage, paced)
            assert paced[stage]["p50_ms"] <= paced[stage]["p99_ms"], (name, stage)
    assert report["pipelines"]["raw"].get("stages") is None


def test_offline_numbers_and_machine_facts_are_there(report: dict[str, Any]) -> None:
    assert positive(report["check"]["lines_per_s"])
    assert report["check"]["lines"] == 1000
    state = report["state"]
    assert positive(state["patient_days"])
    assert positive(state["wire_bytes_per_patient_day"])
    assert positive(state["stored_bytes_per_patient_day"])
    machine = report["machine"]
    assert positive(machine["nproc"])
    assert machine["python"].count(".") == 2
    assert machine["kafka"]["version"]


def test_the_latency_plot_is_a_png(bench_report: Path) -> None:
    png = bench_report / "latency.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 5_000


def test_the_replay_drained_the_same_backlog_and_its_ratio_is_reported(
    report: dict[str, Any],
) -> None:
    replay = report["replay"]
    assert replay["lines_read"] == 1000 and positive(replay["lines_per_s"])
    rate = report["pipelines"]["processor"]["throughput"]["lines_per_s"]
    assert report["ratios"]["replay_vs_processor"] == pytest.approx(
        replay["lines_per_s"] / rate, rel=1e-3
    )
