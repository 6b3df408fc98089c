"""The bench's drain rate: from the end of the first batch to the output completing the count."""

from __future__ import annotations

from stream_edits_dev.bench.measure import drain_rate

# Two partitions of 100 lines each (offsets 0-99): the first batch's outputs at 1,000 ms (lines
# up to offset 19 of each), the rest by 2,000 ms.
POINTS = [(1000, 0, 19), (1000, 1, 19), (1500, 0, 59), (2000, 0, 99), (2000, 1, 99)]
BASES = {0: 0, 1: 0}


def test_the_window_starts_at_the_first_output_and_leaves_its_lines_out() -> None:
    rate = drain_rate(list(POINTS), BASES)
    assert rate["lines_done"] == 200 and rate["lines_timed"] == 160
    assert rate["seconds"] == 1.0 and rate["lines_per_s"] == 160.0


def test_a_first_state_record_before_the_first_output_starts_the_window() -> None:
    # The processor stored its first batch's state at 600 ms and published it at 1,000 ms.
    rate = drain_rate(list(POINTS), BASES, state_ms=600)
    assert rate["lines_timed"] == 160 and rate["seconds"] == 1.4
    assert rate["lines_per_s"] == round(160 / 1.4, 1)


def test_a_state_record_after_the_first_output_changes_nothing() -> None:
    assert drain_rate(list(POINTS), BASES, state_ms=1200) == drain_rate(list(POINTS), BASES)
