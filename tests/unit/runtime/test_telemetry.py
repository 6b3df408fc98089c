"""What /metrics and /stats/ are made of: the timeline, the histograms, the counters."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import (
    BUCKET_S,
    LATENCY_BUCKETS_S,
    SAMPLES_PER_BUCKET,
    TIMELINE_BUCKETS,
    BulkHistogram,
    PartitionLag,
    Telemetry,
    Timeline,
    percentiles,
)
from tests.factories import NPI_A, line
from tests.unit.runtime.fakes import DictTable, FakeRecord, fake_processor


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(telemetry: Telemetry) -> dict[str, float]:
    """Every sample of the exposition, keyed `name{label=value,...}`, as Prometheus parses it."""
    text = generate_latest(telemetry.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def test_percentiles_are_nearest_rank_and_none_without_samples() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentiles(values) == {"p50": 51.0, "p95": 96.0, "p99": 100.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}


def test_timeline_buckets_by_wall_clock_and_forgets_after_fifteen_minutes() -> None:
    clock = Clock(1_000_000.0)
    timeline = Timeline(clock)
    timeline.count(10, 12, 1)
    timeline.latencies([5.0, 15.0])
    clock.now += BUCKET_S  # the next bucket
    timeline.count(3, 3, 0)
    points = timeline.points()
    counts = [(p["lines"], p["decisions"], p["dead_letters"]) for p in points]
    assert counts == [(10, 12, 1), (3, 3, 0)]
    assert points[1]["t"] - points[0]["t"] == BUCKET_S
    assert (points[0]["p50_ms"], points[0]["p99_ms"]) == (15.0, 15.0)
    assert points[1]["p50_ms"] is None
    recent = timeline.recent_latency()
    assert (recent["count"], recent["p50"]) == (2, 15.0)
    clock.now += TIMELINE_BUCKETS * BUCKET_S
    assert timeline.points() == []
    assert timeline.recent_latency()["count"] == 0


def test_a_busy_bucket_keeps_a_bounded_sample_but_counts_everything() -> None:
    timeline = Timeline(Clock(1_000_000.0))
    timeline.latencies(float(i % 100) for i in range(3 * SAMPLES_PER_BUCKET))
    recent = timeline.recent_latency()
    assert recent["count"] == 3 * SAMPLES_PER_BUCKET
    assert 40.0 <= recent["p50"] <= 60.0  # a uniform sample of 0..99
    assert recent["p99"] >= 95.0


async def test_a_batch_is_measured_from_processing_to_commit() -> None:
    """Three lines, a late primary revising an add-on: one revision, three latencies, one
    batch of three, one checkpoint; the exposition parses and holds no claim content."""
    stats = Stats()
    telemetry = Telemetry(lambda: stats, "rules-v1")
    processor = fake_processor(DictTable(), observer=telemetry)
    stats = processor.stats
    events = [
        line("C-addon", 1, "64462", minutes=5),
        line("C-primary", 1, "64461", minutes=0),
        line("C-other", 1, "99213", member_id="M2"),
    ]
    records = [FakeRecord(i, e.model_dump_json().encode()) for i, e in enumerate(events)]
    await processor.process_batch(records, {TP("claim-lines", 0): 3})
    await processor.settle()

    assert stats.revisions == 1
    found = samples(telemetry)
    assert found["stream_edits_lines_in_total{}"] == 3
    assert found["stream_edits_revisions_total{}"] == 1
    assert found["stream_edits_decisions_total{status=accept}"] == 3
    assert found["stream_edits_decisions_total{status=deny}"] == 1
    assert found["stream_edits_decision_edits_total{edit=ADDON_WITHOUT_PRIMARY}"] == 1
    assert found["stream_edits_batch_size_records_count{}"] == 1
    assert found["stream_edits_batch_size_records_sum{}"] == 3
    assert found["stream_edits_processing_latency_seconds_count{}"] == 3
    assert found["stream_edits_processing_latency_seconds_sum{}"] > 0
    assert found["stream_edits_checkpoint_duration_seconds_count{}"] == 1
    for stage in ("engine", "encode", "outputs", "changelog", "store"):  # once for the batch
        assert found[f"stream_edits_batch_stage_seconds_count{{stage={stage}}}"] == 1, stage
    for stage in ("fetch", "inbox", "commit"):  # the worker's consumer and decide task observe
        assert found[f"stream_edits_batch_stage_seconds_count{{stage={stage}}}"] == 0, stage
    assert found["stream_edits_rules_info{version=rules-v1}"] == 1
    points = telemetry.timeline.points()
    assert [(p["lines"], p["decisions"]) for p in points] == [(3, 4)]

    text = generate_latest(telemetry.registry).decode()
    for value in ("C-addon", "C-primary", "C-other", NPI_A, '"M1"', '"M2"'):
        assert value not in text


async def test_records_that_publish_nothing_add_no_latency() -> None:
    stats = Stats()
    telemetry = Telemetry(lambda: stats, "v")
    processor = fake_processor(DictTable(), observer=telemetry)
    stats = processor.stats
    good = line("C1", 1, "64461").model_dump_json().encode()
    records = [FakeRecord(0, good), FakeRecord(1, good), FakeRecord(2, b"{not json")]
    await processor.process_batch(records, {TP("claim-lines", 0): 3})
    await processor.settle()
    found = samples(telemetry)
    # the redelivery re-publishes its decision (counted); the invalid record is a dead letter
    assert found["stream_edits_processing_latency_seconds_count{}"] == 2
    assert found["stream_edits_dead_letters_total{reason=invalid_line}"] == 1
    assert telemetry.timeline.points()[0]["dead_letters"] == 1


def test_lags_replace_the_previous_set() -> None:
    telemetry = Telemetry(Stats, "v")
    telemetry.lags([PartitionLag("in", 1, 5, 2.5), PartitionLag("in", 0, 0, 0.0)])
    assert [x["partition"] for x in telemetry.lag_view()] == [0, 1]
    assert samples(telemetry)["stream_edits_consumer_lag_seconds{partition=1,topic=in}"] == 2.5
    telemetry.lags([PartitionLag("in", 0, 3, 1.0)])  # partition 1 went to another worker
    found = samples(telemetry)
    assert "stream_edits_consumer_lag_records{partition=1,topic=in}" not in found
    assert found["stream_edits_consumer_lag_records{partition=0,topic=in}"] == 3


def test_starts_are_counted_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "worker-starts"
    for expected in (1, 2, 3):
        telemetry = Telemetry(Stats, "v")
        telemetry.count_start(path)
        assert telemetry.start_count == expected
        assert samples(telemetry)["stream_edits_worker_starts{}"] == expected
    path.write_text("garbage")
    telemetry = Telemetry(Stats, "v")
    telemetry.count_start(path)
    assert telemetry.start_count == 1


def test_the_bulk_histogram_counts_as_prometheus_client_does() -> None:
    """Same buckets (a value on a bound counts in it), sum and count as `Histogram`."""
    values = [0.0, 0.005, 0.0051, 0.1, 0.3, 2.5, 299.0, 300.0, 301.0, 1e6]
    reference_registry = CollectorRegistry()
    reference = Histogram("h", "h", buckets=LATENCY_BUCKETS_S, registry=reference_registry)
    for value in values:
        reference.observe(value)
    bulk = BulkHistogram("h", "h", LATENCY_BUCKETS_S)
    bulk_registry = CollectorRegistry()
    bulk_registry.register(bulk)
    bulk.observe_many(values[:4])
    bulk.observe_many(values[4:])

    def parsed(registry: CollectorRegistry) -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {
            f"{s.name}{s.labels}": s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert parsed(bulk_registry) == pytest.approx(parsed(reference_registry))
