"""Readiness and liveness of the worker, for load balancers, orchestrators and operators.

`/health/` is readiness: 200 only when the broker answers, the worker holds partitions of the
input and its table recovery is done; otherwise 503 with the reasons. `/livez/` is liveness:
200 while the worker's event loop runs and the app has not crashed (restart it when it fails;
do not restart on a 503 from `/health/`, which a broker outage causes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from enum import StrEnum

import faust
from faust.web import Request, Response, View

from stream_edits.runtime.broker_watch import BrokerWatch


class NotReady(StrEnum):
    """Why the worker is not ready."""

    CRASHED = "crashed"
    BROKER_UNREACHABLE = "broker_unreachable"
    RECOVERING = "recovering"
    NO_ASSIGNMENT = "no_assignment"


def not_ready_reasons(
    app: faust.App, watch: BrokerWatch, assigned: Callable[[], Collection[object]]
) -> list[NotReady]:
    """Every reason the worker is not ready now (empty: ready)."""
    reasons = []
    if app.crashed:
        reasons.append(NotReady.CRASHED)
    if not watch.reachable:
        reasons.append(NotReady.BROKER_UNREACHABLE)
    if app.rebalancing or app.in_recovery:
        reasons.append(NotReady.RECOVERING)
    elif not assigned():
        reasons.append(NotReady.NO_ASSIGNMENT)
    return reasons


def add_health(
    app: faust.App, watch: BrokerWatch, assigned: Callable[[], Collection[object]]
) -> Callable[[], list[NotReady]]:
    """Register `/health/` and `/livez/`; returns the readiness check for other views."""

    def reasons() -> list[NotReady]:
        return not_ready_reasons(app, watch, assigned)

    # Read at every scrape of /metrics, not only when someone asks /health/.
    watch.telemetry.ready.set_function(lambda: 0 if reasons() else 1)
    watch.telemetry.recovering.set_function(lambda: 1 if app.in_recovery else 0)

    @app.page("/health/")
    class Readiness(View):
        """200 when ready to process; 503 with the reasons otherwise."""

        async def get(self, request: Request) -> Response:
            found = reasons()
            if found:
                return self.json({"status": "not_ready", "reasons": found}, status=503)
            return self.json({"status": "ready", "reasons": []})

    @app.page("/livez/")
    class Liveness(View):
        """200 while the worker runs; 503 once it has crashed."""

        async def get(self, request: Request) -> Response:
            if app.crashed:
                return self.json({"status": "crashed"}, status=503)
            return self.json({"status": "alive"})

    return reasons
