"""Right answers whatever the producer: our own (member_id keys, murmur2), Kafka's console producer
(no key, round robin) and a librdkafka client (member_id keys placed by CRC32), into one topic,
with kill -9 of the worker in between. The latest decision of every line must be what
`stream-edits check` decides for the same input."""

from __future__ import annotations

import asyncio

import pytest

from stream_edits.jobs.produce import member_key
from stream_edits_dev.bench.workload import generate
from tests.integration.foreign_producers import console_produce, librdkafka_produce
from tests.integration.stream_harness import StreamRig, Verdicts, expected_verdicts

pytestmark = pytest.mark.broker


async def _console(rig: StreamRig, lines: list[bytes]) -> None:
    await asyncio.to_thread(console_produce, rig.settings, rig.settings.input_topic, lines)


async def _librdkafka(rig: StreamRig, lines: list[bytes]) -> None:
    keys = [member_key(raw) or b"no-member" for raw in lines]
    await asyncio.to_thread(
        librdkafka_produce, rig.bootstrap_servers, rig.settings.input_topic, lines, keys
    )


async def _decided(rig: StreamRig, count: int) -> int:
    """Wait until at least `count` lines have a decision (the worker is mid-stream)."""
    seen: Verdicts = {}
    for _ in range(40):
        seen = await rig.verdicts({}, timeout=2, read_all=True)
        if len(seen) >= count:
            break
    assert len(seen) >= count, rig.logs()
    return len(seen)


def _wrong(expected: Verdicts, got: Verdicts) -> dict[tuple[str, int], object]:
    return {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}


async def test_lines_split_over_three_producers_get_the_decisions_check_gives(
    rig: StreamRig,
) -> None:
    lines = generate(6_000, seed=29)
    # Each line once, by one of three producers: a member's lines reach its partition by
    # several paths in no fixed order. Final decisions are order-independent; revision numbers
    # are not, so they are left out.
    expected = {k: (s, e, 0) for k, (s, e, _) in expected_verdicts(lines).items()}
    worker = rig.start_worker()
    await rig.produce(lines[0::3])
    await _console(rig, lines[1::3])
    await _decided(rig, 1_000)
    rig.kill(worker)
    rig.start_worker()
    await _librdkafka(rig, lines[2::3])
    got = await rig.verdicts(expected, timeout=180, revisions=False)
    wrong = _wrong(expected, got)
    assert not wrong, (len(wrong), list(wrong.items())[:5], rig.logs())


async def test_the_same_events_from_three_producers_with_kills_between_change_nothing(
    rig: StreamRig,
) -> None:
    lines = generate(4_000, seed=31)
    # Keyed by member_id first (each member's lines in order on its own partition), then the
    # same events twice more from foreign producers on other partitions: exact redeliveries,
    # which change no decision and no revision.
    expected = expected_verdicts(lines)
    assert expected_verdicts(lines * 3) == expected
    worker = rig.start_worker()
    await rig.produce(lines)
    await _decided(rig, 500)
    rig.kill(worker)
    worker = rig.start_worker()
    await _console(rig, lines)
    await _librdkafka(rig, lines)
    await asyncio.sleep(2)
    rig.kill(worker)
    rig.start_worker()
    got = await rig.verdicts(expected, timeout=180)
    wrong = _wrong(expected, got)
    assert not wrong, (len(wrong), list(wrong.items())[:5], rig.logs())
    letters = await rig.dead_letters(1, timeout=10)
    assert all(h.topic == rig.settings.input_topic for h, _ in letters)
