"""The bench's per-stage breakdown: a worker's stage histograms read twice, the phase between."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import STAGES, Telemetry
from stream_edits_dev.bench.stages import breakdown, parse


def _scrape(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def test_a_phase_counts_only_what_happened_between_the_two_reads() -> None:
    telemetry = Telemetry(Stats, "v")
    for _ in range(50):  # before the phase: slow batches that must not count
        telemetry.stage("engine", 0.4)
    before = parse(_scrape(telemetry))
    for _ in range(98):
        telemetry.stage("engine", 0.0015)  # in the (0.001, 0.002] bucket
    for _ in range(2):
        telemetry.stage("engine", 0.04)  # two slow batches: the p99
    telemetry.stage("outputs", 0.004)
    phase = breakdown(before, parse(_scrape(telemetry)))
    assert list(phase) == list(STAGES)
    engine = phase["engine"]
    assert engine["count"] == 100
    assert engine["mean_ms"] == pytest.approx((98 * 1.5 + 80) / 100, abs=0.01)
    assert 1.0 < engine["p50_ms"] <= 2.0  # interpolated within its bucket
    assert 30.0 < engine["p99_ms"] <= 50.0
    assert phase["outputs"]["count"] == 1 and 3.0 < phase["outputs"]["p50_ms"] <= 5.0
    assert phase["store"] == {
        "count": 0, "mean_ms": None, "p50_ms": None, "p99_ms": None, "total_s": 0.0
    }  # fmt: skip


def test_a_worker_without_stage_histograms_gives_no_breakdown() -> None:
    assert parse("# a page without the metric\nprocess_start_time_seconds 1.0\n") == {}
    assert breakdown({}, {}) == {}


def test_above_every_bound_reads_as_the_largest_bound() -> None:
    telemetry = Telemetry(Stats, "v")
    telemetry.stage("commit", 60.0)
    phase = breakdown({}, parse(_scrape(telemetry)))
    assert phase["commit"]["p99_ms"] == 10_000.0 and phase["commit"]["mean_ms"] == 60_000.0
