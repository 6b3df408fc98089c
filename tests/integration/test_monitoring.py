"""The worker's numbers against what it really did, on the real broker: every count of /stats/
and /metrics is checked against the records on the output and dead-letter topics, lag against
the broker's offsets, and a kill -9 shows in the start count."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.runtime.broker_watch import BrokerWatch
from stream_edits.runtime.placement import owner_function
from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import Telemetry
from stream_edits.settings import Settings
from tests.integration.stream_harness import StreamRig, expected_verdicts, free_port

REPO = Path(__file__).resolve().parents[2]
GOOD = (REPO / "topics/samples/claim-lines.ndjson").read_bytes().splitlines()
BAD = (REPO / "topics/samples/bad-claim-lines.ndjson").read_bytes().splitlines()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.text()


async def until(
    session: aiohttp.ClientSession, url: str, ok: Any, timeout: float
) -> dict[str, Any]:
    """The JSON at `url` once `ok(json)` holds; fails with the last one after `timeout`."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            status, text = await get(session, url)
            last = orjson.loads(text)
            if status == 200 and ok(last):
                return last  # type: ignore[no-any-return]
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"{url} never satisfied the condition: {last}")


def metric_samples(text: str) -> dict[str, float]:
    """Samples of a Prometheus exposition keyed `name{k=v,...}` (labels sorted)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


async def produce_misplaced(settings: Settings, line: bytes) -> None:
    """One unkeyed line on a partition its member is not owned by (a foreign producer's)."""
    member = orjson.loads(line)["member_id"]
    partition = (owner_function(settings.partitions)(member) + 1) % settings.partitions
    producer = AIOKafkaProducer(**kafka_client_kwargs(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.input_topic, line, partition=partition)
    finally:
        await producer.stop()


async def test_every_number_matches_what_the_worker_published(rig: StreamRig) -> None:
    port = free_port()
    rig.extra_env.update(
        {"STREAM_EDITS_WEB_PORT": str(port), "STREAM_EDITS_DATA_DIR": str(rig.workdir / "state")}
    )
    base = f"http://127.0.0.1:{port}"
    settings = rig.settings
    misplaced = orjson.dumps(
        {**orjson.loads(GOOD[0]), "claim_id": "C-MISPLACED-1", "line_number": 1}
    )
    rig.start_worker()
    async with aiohttp.ClientSession() as session:
        await until(session, f"{base}/health/", lambda h: h["status"] == "ready", 60)
        await rig.produce(GOOD + BAD)
        await produce_misplaced(settings, misplaced)
        total = len(GOOD) + len(BAD) + 1
        expected = expected_verdicts([*GOOD, misplaced])
        assert await rig.verdicts(expected, timeout=60) == expected, rig.logs()

        def settled(s: dict[str, Any]) -> bool:
            caught_up = all(x["records"] == 0 for x in s["lag"]) and len(s["lag"]) == 8
            return s["events"] == total + 1 and caught_up  # + the forwarded copy

        stats = await until(session, f"{base}/stats/", settled, 30)
        decisions = await rig.read(
            settings.output_topic, lambda v: len(v) >= stats["decisions"], 30
        )
        dead = await rig.dead_letters(stats["dead_letters"], 30)
        inputs = await rig.read_records(settings.input_topic, lambda r: len(r) >= total, 30)
        status, metrics_text = await get(session, f"{base}/metrics")
        assert status == 200
        live = await get(session, f"{base}/livez/")
        ready = await get(session, f"{base}/health/")

    # decisions, by status and by edit code, exactly as published
    assert stats["decisions"] == len(decisions)
    assert stats["decisions_by_status"] == dict(Counter(d["status"] for d in decisions))
    edits = Counter(e["code"] for d in decisions for e in d["edits"])
    assert stats["decisions_by_edit"] == dict(edits)
    # revisions: decisions of a line other than the one read (a later line changed them)
    lines = {(r.partition, r.offset): r.value for r in inputs}
    revised = 0
    for d in decisions:
        source = orjson.loads(lines[(d["source"]["partition"], d["source"]["offset"])] or b"")
        own_line = (source["claim_id"], source.get("line_number"))  # a void has no line number
        revised += (d["claim_id"], d["line_number"]) != own_line
    assert revised > 0
    assert stats["revisions"] == revised
    # dead letters by reason, the misplaced line forwarded once
    assert stats["dead_letters"] == len(dead) == len(BAD)
    assert stats["dead_letters_by_reason"] == dict(Counter(h.reason for h, _ in dead))
    assert stats["forwarded"] == 1
    assert stats["redeliveries"] >= 1  # the sample holds an exact redelivery
    # latency: one observation per record that published decisions
    sources = {(d["source"]["partition"], d["source"]["offset"]) for d in decisions}
    # (/stats/ counts the last minute: on a slow machine the first may have aged out of it;
    # the histogram below counts them all)
    assert 0 < stats["latency_ms"]["count"] <= len(sources)
    assert 0 <= stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"] < 60_000
    points = stats["timeline"]["points"]
    assert sum(p["lines"] for p in points) == stats["events"]
    assert sum(p["decisions"] for p in points) == stats["decisions"]
    assert sum(p["dead_letters"] for p in points) == stats["dead_letters"]
    assert stats["health"] == {"ready": True, "reasons": []}
    assert stats["starts"] == 1
    lagged = {(x["topic"], x["partition"]) for x in stats["lag"]}
    topics = {settings.input_topic, settings.repartition_topic}
    assert lagged == {(t, p) for t in topics for p in range(settings.partitions)}

    # /metrics says the same, and parses as Prometheus text
    m = metric_samples(metrics_text)
    assert m["stream_edits_lines_in_total{}"] == stats["events"]
    assert m["stream_edits_forwarded_total{}"] == 1
    assert m["stream_edits_revisions_total{}"] == revised
    for status_, count in stats["decisions_by_status"].items():
        assert m[f"stream_edits_decisions_total{{status={status_}}}"] == count
    for code, count in stats["decisions_by_edit"].items():
        assert m[f"stream_edits_decision_edits_total{{edit={code}}}"] == count
    for reason, count in stats["dead_letters_by_reason"].items():
        assert m[f"stream_edits_dead_letters_total{{reason={reason}}}"] == count
    assert m["stream_edits_processing_latency_seconds_count{}"] == len(sources)
    assert m["stream_edits_batch_size_records_sum{}"] == stats["events"]
    assert m["stream_edits_checkpoint_duration_seconds_count{}"] >= 1
    assert m["stream_edits_broker_reachable{}"] == 1
    assert m["stream_edits_ready{}"] == 1
    assert m["stream_edits_table_recovery_in_progress{}"] == 0
    assert m["stream_edits_worker_starts{}"] == 1
    assert m[f"stream_edits_rules_info{{version={stats['rules_version']}}}"] == 1
    for topic, partition in lagged:
        key = f"{{partition={partition},topic={topic}}}"
        assert m[f"stream_edits_consumer_lag_records{key}"] == 0
        assert m[f"stream_edits_consumer_lag_seconds{key}"] == 0
    assert any(k.startswith("faust_") for k in m)  # Faust's own monitor, same registry
    assert live[0] == 200 and ready[0] == 200

    # no member, claim or provider value in the open numbers
    stats_text = orjson.dumps(stats).decode()
    for line in [*GOOD, misplaced]:
        fields = orjson.loads(line)
        for value in (fields["member_id"], fields["claim_id"], fields.get("provider_npi")):
            if value:
                assert f'"{value}"' not in stats_text and f'"{value}"' not in metrics_text

    # a crash shows: the start count survives kill -9
    rig.kill(rig.workers[0])
    rig.start_worker()
    async with aiohttp.ClientSession() as session:
        after = await until(session, f"{base}/stats/", lambda s: s["health"]["ready"], 60)
    assert after["starts"] == 2


async def test_lag_is_the_broker_end_offset_minus_the_committed_one(
    bootstrap_servers: str, unique_name: str
) -> None:
    """Records behind and the age of the oldest, read from the broker for a group that
    committed part of a partition (and a worker that processed further); an empty partition and
    an unreachable broker too."""
    settings = Settings(
        bootstrap_servers=bootstrap_servers, app_id=f"lag-{unique_name}", input_topic=unique_name
    )
    options = kafka_client_kwargs(settings)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    await admin.create_topics([NewTopic(unique_name, 2, 1)])
    await admin.close()
    tp0 = TopicPartition(unique_name, 0)
    now_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(**options)
    await producer.start()
    for i in range(10):  # record i is 100 - i seconds old
        await producer.send_and_wait(
            unique_name, b"x", partition=0, timestamp_ms=now_ms - (100 - i) * 1000
        )
    await producer.stop()
    group = AIOKafkaConsumer(**options, group_id=settings.app_id, enable_auto_commit=False)
    await group.start()
    group.assign([tp0])
    await group.commit({tp0: 3})
    await group.stop()

    telemetry = Telemetry(Stats, "v")
    # the worker hands over Faust's TPs: the probe must take those
    watch = BrokerWatch(settings, telemetry, lambda: {TP(unique_name, 0), TP(unique_name, 1)})
    try:
        await watch.probe()
    finally:
        await watch.close()
    assert watch.reachable
    lags = {x["partition"]: x for x in telemetry.lag_view()}
    assert lags[0]["records"] == 7
    assert 96.0 <= lags[0]["seconds"] <= 97.0 + 30  # record 3: 97 s old when produced
    assert (lags[1]["records"], lags[1]["seconds"]) == (0, 0.0)

    # processed beyond the last commit (commits follow every few seconds): lag from there on;
    # an older processed offset than the committed one changes nothing
    for processed, records in (({TP(unique_name, 0): 5}, 5), ({TP(unique_name, 0): 1}, 7)):
        telemetry = Telemetry(Stats, "v")
        ahead = BrokerWatch(settings, telemetry, lambda: {tp0}, lambda p=processed: p)
        try:
            await ahead.probe()
        finally:
            await ahead.close()
        (lag,) = telemetry.lag_view()
        assert lag["records"] == records
        assert 100 - (10 - records) <= lag["seconds"] <= 100 - (10 - records) + 30

    nowhere = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", app_id=settings.app_id)
    down = BrokerWatch(nowhere, Telemetry(Stats, "v"), lambda: {tp0})
    try:
        began = time.monotonic()
        await down.probe()
    finally:
        await down.close()
    assert not down.reachable and down.probes == 1
    assert time.monotonic() - began < 10
