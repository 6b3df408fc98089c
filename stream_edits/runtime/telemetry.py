"""The worker's measurements: Prometheus metrics on the app's own registry, and a rolling
timeline of the last minutes for `/stats/` and the dashboard.

Counters live once, in the processor's `Stats`; `StatsCollector` reads them at scrape time, so
`/metrics` and `/stats/` cannot disagree. What `Stats` cannot hold (latency, batch sizes,
checkpoint durations, lag, reachability) is observed here. No label ever holds a member, claim or
provider value: labels are statuses, edit codes, reasons, topics and partitions.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from stream_edits.runtime.processor import Stats

NAMESPACE = "stream_edits"
BUCKET_S = 5  # the timeline's resolution
TIMELINE_BUCKETS = 180  # 15 minutes of buckets
RECENT_BUCKETS = 12  # `latency_ms` in /stats/: the last minute
SAMPLES_PER_BUCKET = 2000  # latency samples kept per bucket (a uniform reservoir beyond)

LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000)
CHECKPOINT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STAGE_BUCKETS_S = (
    0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Where a batch's time goes, in order: its oldest record from its timestamp to the inbox, then
# waiting there; deciding (decode, engine, outputs encoded) and encoding member records; outputs
# sent → acknowledged; state sent → acknowledged; the local store; and Faust's periodic commit.
# "gc" is not a batch's: it counts every pause of Python's cyclic collector, wherever it fell.
STAGES = ("fetch", "inbox", "engine", "encode", "outputs", "changelog", "store", "commit", "gc")


@dataclass(slots=True)
class _Bucket:
    """What happened in one BUCKET_S interval."""

    start: int  # epoch seconds, a multiple of BUCKET_S
    lines: int = 0
    decisions: int = 0
    dead_letters: int = 0
    seen: int = 0  # latencies observed (samples holds at most SAMPLES_PER_BUCKET of them)
    samples: list[float] = field(default_factory=list)

    def sample(self, latency_ms: float, rng: random.Random) -> None:
        self.seen += 1
        if len(self.samples) < SAMPLES_PER_BUCKET:
            self.samples.append(latency_ms)
        else:
            # Uniform over the latencies seen (a reservoir): random() is C, randrange Python.
            slot = int(rng.random() * self.seen)
            if slot < SAMPLES_PER_BUCKET:
                self.samples[slot] = latency_ms


def percentiles(samples: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 of `samples` (nearest rank), None when there are none."""
    if not samples:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(samples)
    last = len(ordered) - 1

    def rank(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))], 3)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


class Timeline:
    """Lines, decisions, dead letters and latency samples per BUCKET_S over the last 15 minutes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._buckets: deque[_Bucket] = deque(maxlen=TIMELINE_BUCKETS)
        self._rng = random.Random(0)

    def _current(self) -> _Bucket:
        start = int(self.clock()) // BUCKET_S * BUCKET_S
        if not self._buckets or self._buckets[-1].start != start:
            self._buckets.append(_Bucket(start))
        return self._buckets[-1]

    def count(self, lines: int, decisions: int, dead_letters: int) -> None:
        """Add a batch's counts to the current bucket."""
        bucket = self._current()
        bucket.lines += lines
        bucket.decisions += decisions
        bucket.dead_letters += dead_letters

    def latencies(self, latencies_ms: Iterable[float]) -> None:
        """Add latency samples (ms) to the current bucket."""
        bucket, rng = self._current(), self._rng
        for latency in latencies_ms:
            bucket.sample(latency, rng)

    def _recent(self) -> Iterator[_Bucket]:
        """Buckets of the last 15 minutes, oldest first (older ones are dropped as they age)."""
        oldest = int(self.clock()) - TIMELINE_BUCKETS * BUCKET_S
        return (b for b in self._buckets if b.start > oldest)

    def points(self) -> list[dict[str, Any]]:
        """One point per bucket with activity, oldest first (JSON-ready)."""
        out = []
        for b in self._recent():
            p = percentiles(b.samples)
            out.append(
                {
                    "t": b.start,
                    "lines": b.lines,
                    "decisions": b.decisions,
                    "dead_letters": b.dead_letters,
                    "p50_ms": p["p50"],
                    "p95_ms": p["p95"],
                    "p99_ms": p["p99"],
                }
            )
        return out

    def recent_latency(self) -> dict[str, Any]:
        """Latency percentiles (ms) over the last minute, and how many were observed."""
        since = int(self.clock()) - RECENT_BUCKETS * BUCKET_S
        buckets = [b for b in self._recent() if b.start > since]
        samples = [s for b in buckets for s in b.samples]
        return {**percentiles(samples), "count": sum(b.seen for b in buckets)}


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one consumed partition is behind: records, and the age of the oldest one."""

    topic: str
    partition: int
    records: int
    seconds: float


# (metric name, help, Stats attribute) of the plain counters, and of the labelled ones.
COUNTERS = (
    ("lines_in", "Input records taken (claim-lines and repartition)", "events"),
    ("forwarded", "Lines forwarded to their member's partition", "forwarded"),
    ("replayed", "Records replayed after a restart that published nothing", "replayed"),
    ("redeliveries", "Exact redeliveries (their decisions re-published)", "redeliveries"),
    ("conflicts", "Lines conflicting with an earlier one (dead-lettered)", "conflicts"),
    ("revisions", "Decisions of earlier lines revised by a later line", "revisions"),
    ("expired_keys", "Claim entries and patient-days expired", "expired_keys"),
    ("batches", "Batches processed", "batches"),
)
LABELLED = (
    ("decisions", "Decisions published, by status", "status", "decisions_by_status"),
    ("decision_edits", "Edits on published decisions, by code", "edit", "decisions_by_edit"),
    ("dead_letters", "Records dead-lettered, by reason", "reason", "dead_letters_by_reason"),
)


class StatsCollector(Collector):
    """Exposes the processor's counters (read at scrape time) as Prometheus counters."""

    def __init__(self, stats: Callable[[], Stats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        for name, doc, attribute in COUNTERS:
            yield CounterMetricFamily(f"{NAMESPACE}_{name}", doc, value=getattr(stats, attribute))
        for name, doc, label, attribute in LABELLED:
            family = CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=[label])
            for key, value in sorted(getattr(stats, attribute).items()):
                family.add_metric([key], value)
            yield family


class BulkHistogram(Collector):
    """A Prometheus histogram observed a batch at a time (prometheus_client's `Histogram` takes
    a lock and walks its buckets on every `observe`: ~6% of a line's cost at one per line)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value."""
        counts, bounds, total = self._counts, self.bounds, 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self._sum += total

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self._counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self._sum
        )


class StageHistograms(Collector):
    """Seconds per batch in each of `STAGES`, one histogram labelled by stage."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self._counts = {stage: [0] * (len(self.bounds) + 1) for stage in STAGES}
        self._sums = dict.fromkeys(STAGES, 0.0)

    def observe(self, stage: str, seconds: float) -> None:
        """Count one batch's time in `stage`."""
        self._counts[stage][bisect_left(self.bounds, seconds)] += 1
        self._sums[stage] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["stage"])
        for stage in STAGES:
            cumulative, buckets = 0, []
            bounds = [*map(str, self.bounds), "+Inf"]
            for bound, count in zip(bounds, self._counts[stage], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([stage], buckets, self._sums[stage])
        yield family


class Telemetry:
    """Everything `/metrics` and `/stats/` report beyond the counters, on one registry."""

    def __init__(self, stats: Callable[[], Stats], rules_version: str) -> None:
        self.registry = CollectorRegistry()
        self.timeline = Timeline()
        self.started_at = time.time()
        r = self.registry
        ProcessCollector(registry=r)  # process_start_time_seconds shows restarts
        r.register(StatsCollector(stats))
        self.latency = BulkHistogram(
            f"{NAMESPACE}_processing_latency_seconds",
            "From an input record's timestamp to its decisions being delivered",
            LATENCY_BUCKETS_S,
        )
        r.register(self.latency)
        self.batch_size = Histogram(
            f"{NAMESPACE}_batch_size_records",
            "Records per processed batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.checkpoint = Histogram(
            f"{NAMESPACE}_checkpoint_duration_seconds",
            "From a batch's state being sent to its offsets becoming committable",
            buckets=CHECKPOINT_BUCKETS_S,
            registry=r,
        )
        self.stages = StageHistograms(
            f"{NAMESPACE}_batch_stage_seconds",
            "Seconds a batch spends in each stage, from its oldest record's timestamp to commit",
            STAGE_BUCKETS_S,
        )
        r.register(self.stages)
        self.lag_records = Gauge(
            f"{NAMESPACE}_consumer_lag_records",
            "Records not yet processed, per assigned partition (broker end offset - committed)",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            f"{NAMESPACE}_consumer_lag_seconds",
            "Age of the oldest unprocessed record, per assigned partition (0 when caught up)",
            ["topic", "partition"],
            registry=r,
        )
        self.broker_reachable = Gauge(
            f"{NAMESPACE}_broker_reachable", "1 when the broker answered the last probe", registry=r
        )
        self.recovering = Gauge(
            f"{NAMESPACE}_table_recovery_in_progress",
            "1 while the member table is being recovered from its changelog",
            registry=r,
        )
        self.ready = Gauge(f"{NAMESPACE}_ready", "1 when /health/ answers 200", registry=r)
        self.starts = Gauge(
            f"{NAMESPACE}_worker_starts",
            "Worker processes started on this state directory (a crash loop shows here)",
            registry=r,
        )
        rules = Gauge(f"{NAMESPACE}_rules_info", "The rule set in force", ["version"], registry=r)
        rules.labels(version=rules_version).set(1)
        self._lags: list[PartitionLag] = []
        self.start_count = 0

    def count_start(self, path: Path) -> None:
        """Count this worker start in `path` (kept with the worker's state, so it survives
        restarts: a crash loop shows as a climbing count)."""
        try:
            before = int(path.read_text())
        except (OSError, ValueError):
            before = 0
        self.start_count = before + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{self.start_count}\n")
        self.starts.set(self.start_count)

    # -- observed by the processor and the checkpoints --------------------------------------

    def batch(self, records: int, decisions: int, dead_letters: int) -> None:
        """A batch was processed."""
        self.batch_size.observe(records)
        self.timeline.count(records, decisions, dead_letters)

    def delivered(self, record_timestamps_ms: Sequence[int]) -> None:
        """Decisions of records with these timestamps were delivered just now."""
        now_ms = time.time() * 1000
        latencies = [now_ms - ts if ts < now_ms else 0.0 for ts in record_timestamps_ms]
        self.latency.observe_many([latency / 1000 for latency in latencies])
        self.timeline.latencies(latencies)

    def checkpointed(self, seconds: float) -> None:
        """A batch's offsets became committable `seconds` after its state was sent."""
        self.checkpoint.observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        """A batch spent `seconds` in stage `name` (one of `STAGES`)."""
        self.stages.observe(name, seconds)

    # -- observed by the broker watch -------------------------------------------------------

    def lags(self, lags: Sequence[PartitionLag]) -> None:
        """The lag of every partition this worker is assigned (replaces the previous set)."""
        self.lag_records.clear()
        self.lag_seconds.clear()
        for lag in lags:
            labels = (lag.topic, str(lag.partition))
            self.lag_records.labels(*labels).set(lag.records)
            self.lag_seconds.labels(*labels).set(lag.seconds)
        self._lags = sorted(lags, key=lambda lag: (lag.topic, lag.partition))

    def lag_view(self) -> list[dict[str, Any]]:
        """Lag per partition, JSON-ready."""
        return [
            {"topic": x.topic, "partition": x.partition, "records": x.records, "seconds": x.seconds}
            for x in self._lags
        ]
