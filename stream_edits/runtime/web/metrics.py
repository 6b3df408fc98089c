"""`/metrics`: Prometheus text exposition of the worker's registry, Faust's own sensors included.

Faust's `PrometheusMonitor` adds what Faust measures itself (rebalances, commit latency, table
recovery and web requests, under the `faust_` prefix) to the same registry as the project's
`stream_edits_` metrics; its view serves that registry at `/metrics`.
"""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from stream_edits.runtime.telemetry import Telemetry


def add_metrics(app: faust.App, telemetry: Telemetry) -> None:
    """Install Faust's Prometheus monitor on the telemetry registry and serve it at /metrics."""
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=telemetry.registry, name_prefix="faust"
    )
