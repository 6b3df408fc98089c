"""`/stats/`: the numbers of `/metrics` as one JSON document, for people, scripts and the
dashboard. Counts, times and partitions only: never a member, claim or provider value."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import BUCKET_S, Telemetry
from stream_edits.runtime.web.health import NotReady
from stream_edits.settings import Settings


def stats_document(
    settings: Settings,
    rules_version: str,
    stats: Stats,
    telemetry: Telemetry,
    reasons: list[NotReady],
) -> dict[str, Any]:
    """The `/stats/` document."""
    return {
        "app_id": settings.app_id,
        "rules_version": rules_version,
        "processing_guarantee": settings.processing_guarantee,
        "started_at": datetime.fromtimestamp(telemetry.started_at, UTC).isoformat(),
        "uptime_s": round(time.time() - telemetry.started_at, 1),
        "starts": telemetry.start_count,
        "health": {"ready": not reasons, "reasons": [str(r) for r in reasons]},
        **stats.as_dict(),
        "lag": telemetry.lag_view(),
        "latency_ms": telemetry.timeline.recent_latency(),
        "timeline": {"bucket_s": BUCKET_S, "points": telemetry.timeline.points()},
    }


def add_stats(
    app: faust.App,
    settings: Settings,
    rules_version: str,
    stats: Callable[[], Stats],
    telemetry: Telemetry,
    readiness: Callable[[], list[NotReady]],
) -> None:
    """Register `/stats/`."""

    @app.page("/stats/")
    class StatsView(View):
        """The worker's numbers as JSON."""

        async def get(self, request: Request) -> Response:
            document = stats_document(settings, rules_version, stats(), telemetry, readiness())
            return self.json(document)
