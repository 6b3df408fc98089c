"""The Faust processor end to end on the real broker: decisions, dead letters, crashes, scale-out.

Every expectation is what `stream-edits check` (the same engine, offline) decides for the same
input, so the stream is held to the engine contract, revisions included.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits_dev.bench.workload import generate
from tests.factories import NPI_A, NPI_B
from tests.integration.stream_harness import (
    StreamRig,
    assert_denials_name_their_causes,
    expected_causes,
    expected_verdicts,
)

pytestmark = pytest.mark.broker

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"


def _line(claim: str, n: int, member: str, code: str, received: datetime, **extra: object) -> bytes:
    event = {
        "claim_id": claim,
        "line_number": n,
        "member_id": member,
        "provider_npi": NPI_A,
        "date_of_service": "2025-06-02",
        "procedure_code": code,
        "received_at": received.isoformat(),
        **extra,
    }
    return orjson.dumps(event)


def _void(claim: str, member: str, original: str, received: datetime) -> bytes:
    return orjson.dumps(
        {
            "claim_id": claim,
            "member_id": member,
            "claim_frequency": "8",
            "original_claim_id": original,
            "received_at": received.isoformat(),
        }
    )


async def test_sample_claims_are_decided_as_check_decides_them(rig: StreamRig) -> None:
    lines = (SAMPLES / "claim-lines.ndjson").read_bytes().splitlines()
    expected = expected_verdicts(lines)
    assert {v[0] for v in expected.values()} >= {"accept", "deny", "void"}
    rig.start_worker()
    await rig.produce(lines)
    assert await rig.verdicts(expected, timeout=90) == expected, rig.logs()
    causes = expected_causes(lines)
    assert await rig.causes(causes, timeout=30) == causes
    assert_denials_name_their_causes(causes)
    # The sample's add-ons are billed with no primary at all: nothing to name for them.
    named = {code for edits in causes.values() for code, related in edits if related}
    assert named == {"MUE_EXCEEDED", "PTP_BUNDLED"}


async def test_day_spread_over_claims_in_reverse_order_with_void_first_and_replacement_chain(
    rig: StreamRig,
) -> None:
    t0 = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    m = f"M-{random.randrange(10**9)}"
    minutes = [t0 + timedelta(minutes=i * 7) for i in range(6)]
    day = [  # one patient-day over four claims, minutes apart
        _line("P1", 1, m, "64461", minutes[0]),
        _line("P2", 1, m, "64462", minutes[1]),
        _line("P3", 1, m, "77002", minutes[2]),
        _line("P4", 1, m, "64462", minutes[3]),
    ]
    chain = [  # A replaced by B replaced by C; a void of D that arrives before D
        _line("A", 1, m + "x", "64461", minutes[0]),
        _line("B", 1, m + "x", "64461", minutes[1], claim_frequency="7", original_claim_id="A"),
        _line("C", 1, m + "x", "64461", minutes[2], claim_frequency="7", original_claim_id="B"),
        _line("C", 2, m + "x", "64462", minutes[2], claim_frequency="7", original_claim_id="B"),
        _line("D", 1, m + "y", "64461", minutes[0]),
        _line("D", 2, m + "y", "99213", minutes[0]),
    ]
    arrival = list(reversed(day)) + [_void("V", m + "y", "D", minutes[5])] + list(reversed(chain))
    expected = expected_verdicts(arrival)
    assert expected[("P2", 1)][:2] == ("accept", [])
    assert expected[("P4", 1)][:2] == ("deny", ["MUE_EXCEEDED"])
    assert expected[("P3", 1)][:2] == ("deny", ["PTP_BUNDLED"])
    assert expected[("A", 1)][0] == expected[("B", 1)][0] == "void"
    assert expected[("C", 2)][:2] == ("accept", [])
    assert expected[("D", 1)][0] == expected[("D", 2)][0] == "void"
    causes = expected_causes(arrival)
    assert causes[("P4", 1)] == [("MUE_EXCEEDED", [["P2", 1]])]  # P2's add-on unit came first
    assert causes[("P3", 1)] == [("PTP_BUNDLED", [["P1", 1]])]
    rig.start_worker()
    await rig.produce(arrival)
    assert await rig.verdicts(expected, timeout=90) == expected, rig.logs()
    assert await rig.causes(causes, timeout=30) == causes
    assert_denials_name_their_causes(causes)


async def test_bad_input_goes_to_the_dead_letter_topic_and_valid_lines_still_get_decided(
    rig: StreamRig,
) -> None:
    bad = (SAMPLES / "bad-claim-lines.ndjson").read_bytes().splitlines()
    good = [_line("G1", 1, "M-good", "64461", datetime(2025, 6, 2, tzinfo=UTC))]
    impossible = _line("G2", 1, "M-good", "64462", datetime(2025, 6, 2, tzinfo=UTC))
    impossible = impossible.replace(b"2025-06-02", b"2025-02-30", 1)
    bad_npi = _line(
        "G3",
        1,
        "M-good",
        "64462",
        datetime(2025, 6, 2, tzinfo=UTC),
        provider_npi=NPI_B[:-1] + str((int(NPI_B[-1]) + 1) % 10),
    )
    inputs = [*bad, impossible, bad_npi, b"{not json", *good]
    rig.start_worker()
    await rig.produce(inputs)
    expected = expected_verdicts(good)
    assert await rig.verdicts(expected, timeout=90) == expected, rig.logs()
    letters = await rig.dead_letters(len(inputs) - 1, 30)
    assert len(letters) == len(inputs) - 1
    reasons = " | ".join(headers.exception_message for headers, _ in letters)
    for field in ("provider_npi", "date_of_service", "malformed JSON", "member_id"):
        assert field in reasons
    assert all(headers.topic == rig.settings.input_topic for headers, _ in letters)
    # Kafka Connect's convention: the refused record's own bytes, context in headers.
    assert sorted(record.value or b"" for _, record in letters) == sorted(inputs[:-1])


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_kill_9_twice_mid_stream_ends_with_every_decision_check_gives(
    rig: StreamRig, guarantee: str
) -> None:
    rig.extra_env["STREAM_EDITS_PROCESSING_GUARANTEE"] = guarantee
    lines = generate(20_000, seed=11)
    expected = expected_verdicts(lines)

    async def outputs_reach(count: int) -> int:
        seen = 0
        for _ in range(60):
            values = await rig.read(rig.settings.output_topic, lambda v: len(v) >= count, 5)
            seen = len(values)
            if seen >= count:
                break
        assert seen >= count, rig.logs()
        return seen

    # The second part is produced only after the first kill, so that kill lands mid-stream
    # however fast the worker is: decisions sent, offsets and state partly behind.
    worker = rig.start_worker()
    await rig.produce(lines[:12_000])
    await outputs_reach(4_000)
    rig.kill(worker)
    at_kill = await rig.read(rig.settings.output_topic, lambda v: False, 3)
    decided = {(v["claim_id"], v["line_number"]) for v in at_kill}
    assert len(decided) < 12_000, "the worker finished the first part before it was killed"
    print(f"first kill after {len(decided)} of {len(expected)} lines were decided")
    worker = rig.start_worker()
    await rig.produce(lines[12_000:])
    print(f"second kill after {await outputs_reach(14_000)} decisions were published")
    rig.kill(worker)  # again, now in the middle of a restarted worker's catch-up
    rig.start_worker()
    got = await rig.verdicts(expected, timeout=240)
    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, (len(wrong), "(expected, got):", list(wrong.items())[:5], rig.logs())


async def test_two_workers_in_one_group_give_the_same_result_as_one(rig: StreamRig) -> None:
    lines = generate(6_000, seed=23)
    expected = expected_verdicts(lines)
    rig.start_worker()
    rig.start_worker()
    await rig.produce(lines)
    got = await rig.verdicts(expected, timeout=180)
    assert got == expected, rig.logs()
    assert all(w.poll() is None for w in rig.workers), rig.logs()


async def test_a_worker_joining_mid_stream_then_the_first_killed_changes_no_decision(
    rig: StreamRig,
) -> None:
    lines = generate(20_000, seed=61)
    expected = expected_verdicts(lines)
    first = rig.start_worker()
    await rig.produce(lines[:10_000])
    rig.start_worker()  # a rebalance while the first worker has batches in flight
    await rig.produce(lines[10_000:])
    await asyncio.sleep(3)
    rig.kill(first)  # and its partitions fail over to the second
    got = await rig.verdicts(expected, timeout=180)
    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, (len(wrong), "(expected, got):", list(wrong.items())[:5], rig.logs())


async def test_unkeyed_input_is_forwarded_to_its_members_partition_before_deciding(
    rig: StreamRig,
) -> None:
    lines = generate(2_000, seed=5)
    # Unkeyed, a member's lines reach its partition by two paths in no fixed order: final
    # decisions are order-independent, revision numbers are not, so they are left out.
    expected = {k: (status, edits, 0) for k, (status, edits, _) in expected_verdicts(lines).items()}
    rig.start_worker()
    producer = AIOKafkaProducer(**kafka_client_kwargs(rig.settings))
    await producer.start()
    try:  # no key: the broker spreads each member's lines over every partition
        for raw in [*lines, b'{"member_id": 7}']:
            await producer.send(rig.settings.input_topic, raw)
        await producer.flush()
    finally:
        await producer.stop()
    assert await rig.verdicts(expected, timeout=120, revisions=False) == expected, rig.logs()
    letters = await rig.dead_letters(len(lines), 15)  # all there are after 15 s
    # Corrections that overtook their originals on the way are decided and also reported
    # (unresolved_reference); the one refused record is the bad one.
    refused = [h for h, _ in letters if h.reason != "unresolved_reference"]
    assert [headers.topic for headers in refused] == [rig.settings.input_topic]
