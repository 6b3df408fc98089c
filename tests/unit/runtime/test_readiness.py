"""Readiness reasons: each condition alone, and together."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_edits.runtime.broker_watch import BrokerWatch
from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import Telemetry
from stream_edits.runtime.web.health import NotReady, add_health, not_ready_reasons


def reasons(assigned: bool = True, **state: Any) -> list[NotReady]:
    app = SimpleNamespace(crashed=False, rebalancing=False, in_recovery=False)
    watch = SimpleNamespace(reachable=True)
    for key, value in state.items():
        setattr(watch if key == "reachable" else app, key, value)
    return not_ready_reasons(
        cast(faust.App, app), cast(BrokerWatch, watch), lambda: {0} if assigned else set()
    )


def test_ready_when_the_broker_answers_and_partitions_are_held_and_recovered() -> None:
    assert reasons() == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"crashed": True}, [NotReady.CRASHED]),
        ({"reachable": False}, [NotReady.BROKER_UNREACHABLE]),
        ({"in_recovery": True}, [NotReady.RECOVERING]),
        ({"rebalancing": True}, [NotReady.RECOVERING]),
        ({"assigned": False}, [NotReady.NO_ASSIGNMENT]),
    ],
)
def test_each_condition_names_its_reason(state: dict[str, Any], expected: list[NotReady]) -> None:
    assert reasons(**state) == expected


def test_reasons_add_up_and_recovery_hides_a_missing_assignment() -> None:
    found = reasons(crashed=True, reachable=False, in_recovery=True, assigned=False)
    assert found == [NotReady.CRASHED, NotReady.BROKER_UNREACHABLE, NotReady.RECOVERING]
    assert [str(r) for r in found] == ["crashed", "broker_unreachable", "recovering"]


def test_the_ready_gauges_are_read_at_scrape_time_without_a_request() -> None:
    """Prometheus scrapes /metrics alone: `ready` must follow readiness without /health/."""
    app = faust.App("readiness-gauges", autodiscover=False)
    telemetry = Telemetry(Stats, "v")
    watch = SimpleNamespace(reachable=True, telemetry=telemetry)
    add_health(app, cast(BrokerWatch, watch), lambda: {0})

    def gauges() -> dict[str, float]:
        text = generate_latest(telemetry.registry).decode()
        return {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name in ("stream_edits_ready", "stream_edits_table_recovery_in_progress")
        }

    assert gauges() == {"stream_edits_ready": 1, "stream_edits_table_recovery_in_progress": 0}
    watch.reachable = False
    app.in_recovery = True
    assert gauges() == {"stream_edits_ready": 0, "stream_edits_table_recovery_in_progress": 1}
