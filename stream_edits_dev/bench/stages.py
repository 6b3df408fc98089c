"""Where a processor's batches spend their time: its stage histograms, read from the worker's
/metrics before and after a measured phase, as per-stage counts and percentiles."""

from __future__ import annotations

import asyncio
import math
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from stream_edits.runtime.telemetry import NAMESPACE, STAGES

METRIC = f"{NAMESPACE}_batch_stage_seconds"

# stage → (upper bounds in seconds, cumulative counts per bound, sum of seconds)
Histograms = dict[str, tuple[list[float], list[float], float]]


def parse(text: str) -> Histograms:
    """The stage histograms in a /metrics page (none when the worker has no such metric)."""
    found: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_bucket"):
                found.setdefault(stage, {})[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                sums[stage] = sample.value
    out: Histograms = {}
    for stage, buckets in found.items():
        bounds = sorted(buckets)
        out[stage] = (bounds, [buckets[b] for b in bounds], sums.get(stage, 0.0))
    return out


async def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> Histograms:
    """The worker's stage histograms now; empty if it does not answer."""

    def fetch() -> str:
        url = f"http://{host}:{port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (local)
            body: bytes = response.read()
            return body.decode()

    try:
        return parse(await asyncio.to_thread(fetch))
    except OSError:
        return {}


def _quantile(bounds: list[float], counts: list[float], q: float) -> float | None:
    """The q-quantile (0-1) of a cumulative histogram, interpolated inside its bucket (as
    Prometheus' histogram_quantile does); the largest finite bound for the +Inf bucket."""
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def breakdown(before: Histograms, after: Histograms) -> dict[str, dict[str, Any]]:
    """Per stage, what happened between two scrapes: batches, mean, p50, p99 and max bucket (ms)."""
    out: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        if stage not in after:
            continue
        bounds, counts, total = after[stage]
        earlier = before.get(stage)
        if earlier is not None and earlier[0] == bounds:
            counts = [a - b for a, b in zip(counts, earlier[1], strict=True)]
            total -= earlier[2]
        n = int(counts[-1]) if counts else 0
        p50, p99 = _quantile(bounds, counts, 0.50), _quantile(bounds, counts, 0.99)
        out[stage] = {
            "count": n,
            "mean_ms": round(1000 * total / n, 2) if n else None,
            "p50_ms": None if p50 is None else round(1000 * p50, 2),
            "p99_ms": None if p99 is None else round(1000 * p99, 2),
            "total_s": round(total, 3),
        }
    return out
