"""An exception is logged by type and frames, never by its message."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP

from stream_edits.log_safety import exception_summary
from tests.factories import line
from tests.unit.stream.fakes import DictTable, FakeRecord, fake_processor


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

    monkeypatch.setattr("stream_edits.stream.processor.decide_line", explode)
    value = line("C-SECRET-9", 1, "64461", member_id="M-SECRET-7").model_dump_json().encode()
    record = FakeRecord(0, value)
    with caplog.at_level(logging.DEBUG):
        await processor.process_batch([record], {TP("claim-lines", 0): 1})
        await processor.settle()
    assert processor.stats.dead_letters_by_reason == {"internal_error": 1}
    assert "internal error on claim-lines[0]@0: KeyError at " in caplog.text
    assert "SECRET" not in caplog.text
