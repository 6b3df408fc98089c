"""Readiness reasons: each condition alone, and together."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest

from stream_edits.stream.broker_watch import BrokerWatch
from stream_edits.web.health import NotReady, not_ready_reasons


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
