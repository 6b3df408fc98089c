"""The outage filter on synthetic log records: timestamps are the fake clock."""

from __future__ import annotations

import inspect
import logging
import socket

import aiokafka.client
import aiokafka.consumer.group_coordinator
import pytest
from aiokafka.conn import create_conn
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, NodeNotReadyError

from stream_edits.runtime.broker_watch import BrokerWatch
from stream_edits.runtime.outage_log import ECHOES, QUIET_S, Outage, OutageFilter
from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import Telemetry
from stream_edits.settings import Settings

T0 = 1_780_000_000.0
SECRET = "member M-4471 claim C-991"  # what an exception message must never carry into a line


class Capture(logging.Handler):
    """Keeps the records that pass its filters."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def record(
    at: float,
    msg: str = "Unable connect to node with id %s: %s",
    args: tuple[object, ...] = (1, OSError(111, f"Connect call failed {SECRET}")),
    name: str = "aiokafka",
    level: int = logging.ERROR,
) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.created = at
    return rec


@pytest.fixture
def reports() -> list[str]:
    return []


@pytest.fixture
def outage() -> Outage:
    return Outage("127.0.0.1:9092")


@pytest.fixture
def handler(outage: Outage, reports: list[str]) -> Capture:
    capture = Capture()
    capture.addFilter(OutageFilter(outage, reports.append))
    return capture


def test_going_away_logs_one_line_without_ids(handler: Capture, reports: list[str]) -> None:
    handler.handle(record(T0))
    handler.handle(record(T0 + 0.1, "Unable to update metadata from %s", ([1],)))
    handler.handle(record(T0 + 0.2, "Failed fetch messages from %s: %s", (1, NodeNotReadyError())))
    assert handler.records == []
    assert len(reports) == 1
    assert reports[0].startswith("broker 127.0.0.1:9092 unreachable since ")
    assert "ConnectionRefusedError (Connection refused)" in reports[0]
    assert "M-4471" not in reports[0] and "C-991" not in reports[0]


def test_at_most_one_line_a_minute_while_away(handler: Capture, reports: list[str]) -> None:
    for tick in range(1500):  # 150 s at 10 failures a second
        handler.handle(record(T0 + tick / 10))
    assert handler.records == []
    assert reports[1:] == [
        "broker 127.0.0.1:9092 still unreachable: 600 failed attempts in the last 60 s",
        "broker 127.0.0.1:9092 still unreachable: 600 failed attempts in the last 60 s",
    ]


def test_coming_back_logs_one_line(outage: Outage, handler: Capture, reports: list[str]) -> None:
    assert outage.answered(T0) is None  # never away: nothing to say
    for tick in range(50):
        handler.handle(record(T0 + tick / 10))
    assert outage.away
    assert (
        outage.answered(T0 + 42)
        == "broker 127.0.0.1:9092 reachable again after 42 s (50 failed attempts)"
    )
    assert outage.answered(T0 + 43) is None
    assert not outage.away
    handler.handle(record(T0 + 100))  # the next outage is reported afresh
    assert len(reports) == 2 and "unreachable since" in reports[1]


def test_other_records_pass_untouched(handler: Capture, reports: list[str]) -> None:
    others = [
        record(T0, "Group Coordinator Request failed: %s", (GroupAuthorizationFailedError(),)),
        record(T0, "Unable to update metadata from %s", ([1],)),  # an echo only while away
        record(T0, "decide_lines failed", (), name="stream_edits.runtime.app"),
        record(T0, "Got exception: %r", (KafkaConnectionError(),), name="faust.transport"),
        record(T0, "Ready", (), name="faust.worker", level=logging.INFO),
    ]
    for rec in others:
        handler.handle(rec)
    assert handler.records == others
    assert reports == []


def test_every_handler_counts_a_record_once(outage: Outage, reports: list[str]) -> None:
    log_filter = OutageFilter(outage, reports.append)
    first, second = Capture(), Capture()
    first.addFilter(log_filter)
    second.addFilter(log_filter)
    for tick in range(3):
        rec = record(T0 + tick)
        first.handle(rec)
        second.handle(rec)
    assert first.records == second.records == []
    assert (
        outage.answered(T0 + 3)
        == "broker 127.0.0.1:9092 reachable again after 3 s (3 failed attempts)"
    )


def test_summaries_are_logged_as_warnings(outage: Outage, caplog: pytest.LogCaptureFixture) -> None:
    handler = Capture()
    handler.addFilter(OutageFilter(outage))  # reports through the module's logger
    with caplog.at_level(logging.WARNING, logger="stream_edits.runtime.outage_log"):
        handler.handle(record(T0))
    assert [(r.levelname, r.name) for r in caplog.records] == [
        ("WARNING", "stream_edits.runtime.outage_log")
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_end_of_an_outage_waits_until_the_clients_are_quiet(outage: Outage) -> None:
    reported: list[str] = []
    log_filter = OutageFilter(outage, report=reported.append)
    Capture().addFilter(log_filter)
    log_filter.filter(record(T0))
    log_filter.broker_answered(T0 + QUIET_S / 2)  # the clients failed just now: not over yet
    assert outage.away and len(reported) == 1
    log_filter.broker_answered(T0 + QUIET_S)
    assert not outage.away
    assert reported[-1] == "broker 127.0.0.1:9092 reachable again after 3 s (1 failed attempts)"
    log_filter.broker_answered(T0 + 10)  # no outage: nothing to say
    assert len(reported) == 2


async def test_the_watch_of_a_silent_broker_reports_one_line_and_nothing_of_aiokafka(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(bootstrap_servers=f"127.0.0.1:{closed_port()}")
    watch = BrokerWatch(settings, Telemetry(Stats, "v"), set)
    caplog.handler.addFilter(watch.outage_filter)  # as the watch puts it on the root handlers
    try:
        with caplog.at_level(logging.DEBUG):
            await watch.probe()
            await watch.probe()
    finally:
        await watch.close()
    assert not watch.reachable and watch.probes == 2
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in loud] == ["stream_edits.runtime.outage_log"], loud
    assert "unreachable since" in loud[0].getMessage()


def test_aiokafka_still_has_what_the_filter_and_probe_rely_on() -> None:
    sources = inspect.getsource(aiokafka.client) + inspect.getsource(
        aiokafka.consumer.group_coordinator
    )
    assert [template for template in ECHOES if f'"{template}"' not in sources] == []
    assert aiokafka.client.log.name == "aiokafka"
    parameters = inspect.signature(create_conn).parameters
    for name in ("request_timeout_ms", "security_protocol", "ssl_context", "sasl_mechanism"):
        assert name in parameters, f"aiokafka.conn.create_conn no longer takes {name}"
