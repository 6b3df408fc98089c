"""An exception is logged by type and frames, never by its message."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP

from stream_edits.log_safety import exception_summary
from tests.factories import line
from tests.unit.runtime.fakes import DictTable, FakeRecord, fake_processor


def fail_with(value: str) -> None:
    try:
        {}[value]
    except KeyError as error:
        raise ValueError(f"bad member {value}") from error


def test_the_summary_names_type_and_frames_but_not_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        fail_with("M-SECRET-123")
    summary = exception_summary(caught.value)
    assert "M-SECRET-123" not in summary
    assert summary.startswith("ValueError at ")
    assert "test_log_safety.py:" in summary and "in fail_with" in summary
    assert "caused by KeyError at " in summary


async def test_an_internal_error_is_dead_lettered_and_logged_without_values(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = fake_processor(DictTable())

    def explode(*args: object) -> None:
        raise KeyError("C-SECRET-9 of M-SECRET-7")

    monkeypatch.setattr("stream_edits.runtime.processor.decide_line", explode)
    value = line("C-SECRET-9", 1, "64461", member_id="M-SECRET-7").model_dump_json().encode()
    record = FakeRecord(0, value)
    with caplog.at_level(logging.DEBUG):
        await processor.process_batch([record], {TP("claim-lines", 0): 1})
        await processor.settle()
    assert processor.stats.dead_letters_by_reason == {"internal_error": 1}
    assert "internal error on claim-lines[0]@0: KeyError at " in caplog.text
    assert "SECRET" not in caplog.text


def test_one_logging_set_up_holds_the_loggers_that_log_values_and_filters_the_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_edits.log_safety import QUIET_LOGGERS, configure_logging

    for name in [*QUIET_LOGGERS, "stream_edits.runtime.processor"]:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    handler = logging.NullHandler()
    monkeypatch.setattr(logging.root, "handlers", [handler])
    drop_all = logging.Filter("nothing-matches-this")
    configure_logging(quiet={"stream_edits.runtime.processor": logging.ERROR}, filters=[drop_all])
    configure_logging(filters=[drop_all])  # again, as the worker's watch does: idempotent
    assert logging.getLogger("aiokafka").level == logging.WARNING
    assert logging.getLogger("faust.tables").level == logging.WARNING
    assert not logging.getLogger("pyx12").isEnabledFor(logging.CRITICAL)
    assert logging.getLogger("stream_edits.runtime.processor").level == logging.ERROR
    assert handler.filters == [drop_all]


def test_a_silenced_logger_logs_nothing_inside_and_gets_its_level_back(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_edits.log_safety import silenced

    target = logging.getLogger("aiokafka")
    monkeypatch.setattr(target, "level", logging.INFO)
    with caplog.at_level(logging.DEBUG), silenced("aiokafka"):
        target.critical("refused")
    assert caplog.records == [] and target.level == logging.INFO
