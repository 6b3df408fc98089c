"""No record stops the worker: oversized, binary, null, unkeyed or state-bloating records each end
as a decision or a dead letter on the real broker, and the lines after them are decided."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.models import RejectCode
from tests.factories import NPI_A
from tests.integration.stream_harness import StreamRig, expected_verdicts

pytestmark = pytest.mark.broker

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def _line(claim: str, member: str, dos: date, received: datetime, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "claim_id": claim,
            "line_number": 1,
            "member_id": member,
            "provider_npi": NPI_A,
            "date_of_service": dos.isoformat(),
            "procedure_code": "64461",
            "received_at": received.isoformat(),
            **extra,
        }
    )


def _history(member: str, lines: int) -> list[bytes]:
    """One member's lines over many days, more than its state may hold at the default limit."""
    return [
        _line(
            f"H{n:05d}",
            member,
            date(2025, 1, 1) + timedelta(days=n % 300),
            T0 + timedelta(seconds=n),
        )
        for n in range(lines)
    ]


async def test_poison_records_end_as_dead_letters_and_the_stream_goes_on(rig: StreamRig) -> None:
    settings = rig.settings
    limit = settings.max_message_bytes
    binary = b"\x89PNG" + bytes(range(256)) * (900_000 // 256)  # ~900 KB, not JSON
    big_valid = _line("BIG", "M-big", date(2025, 6, 1), T0, notes="n" * (limit - 2_000))
    assert 1_000_000 < len(big_valid) < limit
    samples = (SAMPLES / "claim-lines.ndjson").read_bytes().splitlines()
    rig.start_worker()
    producer = AIOKafkaProducer(**kafka_client_kwargs(settings), max_request_size=2 * limit)
    await producer.start()
    try:
        # Hostile placement: poison on several partitions, with and without keys.
        await producer.send_and_wait(settings.input_topic, binary, key=b"M-big", partition=1)
        await producer.send_and_wait(settings.input_topic, None, key=b"tombstone", partition=2)
        await producer.send_and_wait(settings.input_topic, b"", partition=3)
        await producer.send_and_wait(settings.input_topic, big_valid, partition=0)
    finally:
        await producer.stop()
    await rig.produce(samples)  # valid lines after the poison, keyed by member_id

    expected = expected_verdicts(samples)
    got = await rig.verdicts(expected, timeout=120, read_all=False)
    assert {k: v for k, v in got.items() if k in expected} == expected, rig.logs()
    got = await rig.verdicts({**expected, ("BIG", 1): ("accept", [], 1)}, timeout=60)
    assert got[("BIG", 1)][0] == "accept", rig.logs()  # a valid ~1 MB line is decided

    letters = await rig.dead_letters(3, timeout=60)
    assert {h.reason for h, _ in letters} == {RejectCode.INVALID_LINE}
    assert sorted(len(r.value or b"") for _, r in letters) == [0, 0, len(binary)]
    assert [r.value for _, r in letters if r.key == b"M-big"] == [binary]  # bytes unchanged
    null_letters = [r for _, r in letters if r.value is None]
    assert [r.key for r in null_letters] == [b"tombstone"]  # null stays null, key kept
    assert all(w.poll() is None for w in rig.workers), rig.logs()


async def test_a_member_whose_history_outgrows_the_state_limit_does_not_stop_the_stream(
    rig: StreamRig,
) -> None:
    small = 64 * 1024  # the smallest allowed: 48 KiB of state per member
    rig.extra_env["STREAM_EDITS_MAX_MESSAGE_BYTES"] = str(small)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(rig.settings))
    await admin.start()
    try:  # the input topic takes no more than the worker is told (its preflight checks it)
        resource = {"max.message.bytes": str(small)}
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, rig.settings.input_topic, resource)]
        )
    finally:
        await admin.close()
    history = _history("M-history", 700)
    after = (SAMPLES / "claim-lines.ndjson").read_bytes().splitlines()
    rig.start_worker()
    producer = AIOKafkaProducer(**kafka_client_kwargs(rig.settings))
    await producer.start()
    try:  # spread over every partition: most lines are forwarded to the member's
        for n, raw in enumerate(history):
            await producer.send(rig.settings.input_topic, raw, partition=n % 4)
        await producer.flush()
    finally:
        await producer.stop()
    await rig.produce(after)

    expected = expected_verdicts(after)
    history_claims = {f"H{n:05d}" for n in range(len(history))}
    refused: set[str] = set()
    decided: set[str] = set()
    for _ in range(30):  # until every history line has an answer
        assert all(w.poll() is None for w in rig.workers), rig.logs()
        got = await rig.verdicts({}, timeout=3, read_all=True)
        letters = await rig.dead_letters(len(history), timeout=3)
        assert {h.reason for h, _ in letters} <= {RejectCode.MEMBER_STATE_TOO_LARGE}
        refused = {orjson.loads(r.value or b"")["claim_id"] for _, r in letters}
        decided = {claim for (claim, _) in got if claim.startswith("H")}
        if decided | refused >= history_claims:
            break
    # Each line of the member is decided or dead-lettered, never both; the rest go on.
    assert refused, "the history should pass the member state limit"
    assert decided | refused == history_claims
    assert not decided & refused
    assert {k: v for k, v in got.items() if k in expected} == expected, rig.logs()
