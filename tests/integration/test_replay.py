"""`stream-edits replay` and `reconcile` on the real broker: a replay under the same rules equals
the live output, a replay from a timestamp equals the live decisions of its window, a what-if
replay differs exactly where `check --rules` says, and the live worker keeps deciding meanwhile."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_edits.jobs.check import final_decisions
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.rules.loader import load_rules
from stream_edits_dev.bench.workload import generate
from tests.factories import NPI_A
from tests.integration.stream_harness import REPO, StreamRig, Verdicts, expected_verdicts

pytestmark = pytest.mark.broker
DEFAULT_RULES = REPO / "stream_edits" / "rules" / "default"


def _status_and_edits(verdicts: Verdicts) -> dict[tuple[str, int], tuple[str, list[str]]]:
    return {line: (status, edits) for line, (status, edits, _) in verdicts.items()}


async def _latest(rig: StreamRig, topic: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The latest decision per line on `topic` (the highest revision, the last read on ties)."""
    values = await rig.read(topic, lambda v: False, 4)
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for value in values:
        line = (value["claim_id"], value["line_number"])
        if line not in latest or value["revision"] >= latest[line]["revision"]:
            latest[line] = value
    return latest


def _what_if_rules(tmp_path: Path) -> Path:
    """The shipped rules with 64461's daily limit raised to 2."""
    rules = tmp_path / "rules-64461-limit-2"
    shutil.copytree(DEFAULT_RULES, rules)
    mue = rules / "mue_practitioner.csv"
    mue.write_text(mue.read_text().replace("64461,1,", "64461,2,"))
    return rules


def _repeated_primaries(members: int) -> list[bytes]:
    """Members with two or three 64461 lines on one day, on separate claims: the second is
    over today's limit of 1, the third over a limit of 2 too."""
    lines = []
    for m in range(members):
        for n in range(2 + m % 2):
            lines.append(
                orjson.dumps(
                    {
                        "claim_id": f"R{m}-{n}",
                        "line_number": 1,
                        "member_id": f"MR{m}",
                        "provider_npi": NPI_A,
                        "date_of_service": "2025-05-05",
                        "procedure_code": "64461",
                        "received_at": f"2025-05-06T09:{n:02d}:00+00:00",
                    }
                )
            )
    return lines


async def test_a_full_replay_equals_the_live_output_and_a_what_if_differs_where_check_does(
    rig: StreamRig, tmp_path: Path
) -> None:
    lines = generate(50_000, seed=43) + _repeated_primaries(40)
    expected = expected_verdicts(lines)
    worker = rig.start_worker()
    await rig.produce(lines[:30_000])
    await asyncio.sleep(2)
    rig.kill(worker)  # kill -9 midway through the live run
    rig.start_worker()
    await rig.produce(lines[30_000:])
    live = await rig.verdicts(expected, timeout=240)
    assert live == expected, rig.logs()

    same = f"{rig.settings.output_topic}-replay"
    done = rig.cli("replay", "--output-topic", same, "--json")
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["lines_read"] == len(lines)
    latest = await _latest(rig, same)
    replayed = {line: (d["status"], [e["code"] for e in d["edits"]]) for line, d in latest.items()}
    assert replayed == _status_and_edits(expected)
    agree = rig.cli("reconcile", rig.settings.output_topic, same)
    assert agree.returncode == 0, agree.stdout + agree.stderr

    what_if = f"{rig.settings.output_topic}-what-if"
    rules = _what_if_rules(tmp_path)
    done = rig.cli("replay", "--output-topic", what_if, "--rules", str(rules), "--no-progress")
    assert done.returncode == 0, done.stderr
    under_new_limit = {
        (d.claim_id, d.line_number): (d.status.value, [e.code for e in d.edits])
        for d in final_decisions(lines, load_rules(rules))
    }
    live_answers = _status_and_edits(expected)
    changed = {k for k, v in under_new_limit.items() if live_answers[k] != v}
    assert changed, "raising 64461's limit should change some decisions"
    report_path = tmp_path / "what-if.json"
    differ = rig.cli("reconcile", rig.settings.output_topic, what_if, "--json", str(report_path))
    assert differ.returncode == 1, differ.stdout + differ.stderr
    report = orjson.loads(report_path.read_bytes())
    assert {tuple(d["line"]) for d in report["differences"]} == changed


async def test_a_replay_from_a_timestamp_publishes_exactly_the_live_decisions_of_its_window(
    rig: StreamRig,
) -> None:
    lines = generate(8_000, seed=47)
    expected = expected_verdicts(lines)
    rig.start_worker()
    await rig.produce(lines[:5_000])
    await asyncio.sleep(1.5)
    middle = datetime.now(UTC)
    await asyncio.sleep(1.5)
    await rig.produce(lines[5_000:])
    assert await rig.verdicts(expected, timeout=180) == expected, rig.logs()

    window = await _offsets_at(rig, middle)
    live = await rig.read(rig.settings.output_topic, lambda v: False, 4)
    # The live decisions of the window: those caused by records from the window's offsets on.
    in_window = {}
    for value in live:
        source = value["source"]
        if source["offset"] >= window[source["partition"]]:
            line = (value["claim_id"], value["line_number"])
            if line not in in_window or value["revision"] >= in_window[line]["revision"]:
                in_window[line] = value
    assert 0 < len(in_window) < len(expected)

    out = f"{rig.settings.output_topic}-from-middle"
    done = rig.cli("replay", "--output-topic", out, "--from", middle.isoformat(), "--json")
    assert done.returncode == 0, done.stderr
    replayed = await _latest(rig, out)
    assert set(replayed) == set(in_window)
    for line, value in replayed.items():  # the same answers; revisions follow arrival order
        live_value = in_window[line]
        assert (value["status"], value["edits"]) == (live_value["status"], live_value["edits"])


async def test_the_live_worker_keeps_deciding_while_a_replay_runs(rig: StreamRig) -> None:
    history = generate(40_000, seed=53)
    rig.start_worker()
    await rig.produce(history)
    assert await rig.verdicts(expected_verdicts(history), timeout=240), rig.logs()
    fresh = [
        raw.replace(b'"claim_id":"', b'"claim_id":"N').replace(
            b'"original_claim_id":"', b'"original_claim_id":"N'
        )
        for raw in generate(300, seed=59)
    ]
    expected = expected_verdicts(history + fresh)
    replayed_topic = f"{rig.settings.output_topic}-during"
    replay = asyncio.create_task(
        asyncio.to_thread(rig.cli, "replay", "--output-topic", replayed_topic, "--no-progress")
    )
    await asyncio.sleep(1.0)  # the replay process is starting and reading
    await rig.produce(fresh)
    got = await rig.verdicts(expected, timeout=120)
    assert _status_and_edits(got) == _status_and_edits(expected), rig.logs()
    done = await replay
    assert done.returncode == 0, done.stderr
    # The live worker decided the fresh lines while the replay was still publishing.
    live = await rig.read(rig.settings.output_topic, lambda v: False, 4)
    fresh_decided = min(
        datetime.fromisoformat(v["decided_at"]) for v in live if v["claim_id"].startswith("N")
    )
    records = await rig.read_records(replayed_topic, lambda r: False, 4)
    replay_last = max(r.timestamp for r in records) / 1000
    assert fresh_decided.timestamp() < replay_last


async def _offsets_at(rig: StreamRig, moment: datetime) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**kafka_client_kwargs(rig.settings), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(rig.settings.input_topic, p) for p in range(4)]
        found = await consumer.offsets_for_times({tp: int(moment.timestamp() * 1000) for tp in tps})
        end = await consumer.end_offsets(tps)
        return {tp.partition: end[tp] if hit is None else hit.offset for tp, hit in found.items()}
    finally:
        await consumer.stop()


async def test_two_replays_at_once_and_a_replay_of_an_ndjson_archive_agree_with_check(
    rig: StreamRig, tmp_path: Path
) -> None:
    lines = generate(6_000, seed=61)
    expected = _status_and_edits(expected_verdicts(lines))
    await rig.produce(lines)  # no live worker needed: a replay reads claim-lines itself
    archive = tmp_path / "claim-lines-2025.ndjson"
    archive.write_bytes(b"\n".join(lines) + b"\n")
    out = rig.settings.output_topic
    runs = await asyncio.gather(
        asyncio.to_thread(rig.cli, "replay", "--output-topic", f"{out}-a", "--no-progress"),
        asyncio.to_thread(rig.cli, "replay", "--output-topic", f"{out}-b", "--no-progress"),
        asyncio.to_thread(
            rig.cli, "replay", "--file", str(archive), "--output-topic", f"{out}-f", "--json"
        ),
    )
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    for topic in (f"{out}-a", f"{out}-b", f"{out}-f"):
        latest = await _latest(rig, topic)
        got = {line: (d["status"], [e["code"] for e in d["edits"]]) for line, d in latest.items()}
        assert got == expected, topic
    assert orjson.loads(runs[2].stdout)["lines_read"] == len(lines)
    # Each replay cleaned up its local state.
    assert not list((Path.home() / ".cache" / "stream-edits" / "replay").glob(f"{out}-*"))
