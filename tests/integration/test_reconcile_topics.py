"""`stream-edits reconcile` on the real broker: compacted 4-partition topics of decisions, read
to their end with no consumer group, against each other and against `check` output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_edits.cli import reconcile as reconcile_command
from stream_edits.jobs import reconcile
from stream_edits.jobs.check import final_decisions
from stream_edits.kafka.admin import partition_counts, wait_visible
from stream_edits.kafka.topics import line_key
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings
from tests.factories import NPI_A

pytestmark = pytest.mark.broker

PARTITIONS = 4
SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples" / "claim-lines.ndjson"

Wire = dict[str, Any]


@pytest.fixture
async def topics(bootstrap_servers: str, unique_name: str) -> AsyncIterator[tuple[str, str]]:
    """Two compacted topics of PARTITIONS partitions, like claim-edits: live and replay."""
    names = (f"edits-live-{unique_name}", f"edits-replay-{unique_name}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=PARTITIONS,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
                for name in names
            ]
        )
        await wait_visible(admin, list(names))
        yield names
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def checked() -> list[Wire]:
    """`stream-edits check topics/samples/claim-lines.ndjson`: the final decision per line."""
    lines = SAMPLES.read_bytes().splitlines(keepends=True)
    return [d.to_wire() for d in final_decisions(lines, load_rules())]


def published(d: Wire, revision: int, offset: int) -> Wire:
    """`d` as the worker publishes it: its revision, NPI, decision time and input record."""
    return {
        **d,
        "revision": revision,
        "provider_npi": NPI_A,
        "decided_at": f"2025-03-15T09:{offset % 60:02d}:00+00:00",
        "source": {"topic": "claim-lines", "partition": offset % PARTITIONS, "offset": offset},
    }


def live_history(decisions: list[Wire]) -> list[Wire]:
    """Every revision a live run publishes: lines not accepted were accepted first (revision
    1), then changed (revision 2); C1001#1 is published twice (a redelivered revision)."""
    history = []
    for offset, d in enumerate(decisions):
        if d["status"] != "accept":
            history.append(published({**d, "status": "accept", "edits": []}, 1, offset))
            history.append(published(d, 2, offset + 100))
        else:
            history.append(published(d, 1, offset))
    return [*history, history[0]]


def mue_denial(decisions: list[Wire], claim_id: str, line_number: int, revision: int) -> Wire:
    """The line's decision changed to a deny by MUE (the edit taken from C1006#1)."""
    mue = next(d["edits"] for d in decisions if (d["claim_id"], d["line_number"]) == ("C1006", 1))
    line = next(
        d for d in decisions if (d["claim_id"], d["line_number"]) == (claim_id, line_number)
    )
    return published({**line, "status": "deny", "edits": mue}, revision, 500)


async def publish(
    bootstrap_servers: str,
    topic: str,
    values: Sequence[Wire | bytes | None],
    first_partition: int = 0,
) -> None:
    """Decisions keyed by their line, on partitions in turn (revisions of a line land on
    different ones); raw bytes, or None (a tombstone), under the key of C9999#1."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for n, value in enumerate(values):
            key, payload = line_key("C9999", 1), value
            if isinstance(value, dict):
                key, payload = (
                    line_key(value["claim_id"], value["line_number"]),
                    orjson.dumps(value),
                )
            partition = (first_partition + n) % PARTITIONS
            await producer.send_and_wait(topic, payload, key=key, partition=partition)
    finally:
        await producer.stop()


async def reconciled(
    bootstrap_servers: str, a: str | Path, b: str | Path, json_path: Path
) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON report of `stream-edits reconcile A B --json PATH`."""
    settings = Settings(bootstrap_servers=bootstrap_servers)
    code = await asyncio.to_thread(reconcile.run, settings, str(a), str(b), json_path)
    return code, orjson.loads(json_path.read_bytes())


async def test_topics_agree_on_their_latest_decisions_until_one_changes(
    bootstrap_servers: str,
    topics: tuple[str, str],
    checked: list[Wire],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live, replay = topics
    # The live topic also holds an unreadable value and a tombstone, as a compacted topic may.
    await publish(bootstrap_servers, live, [*live_history(checked), b"not a decision", None])
    # The replay decided each line once, in another order, at other times.
    replayed = [published(d, 1, 1000 + n) for n, d in enumerate(reversed(checked))]
    await publish(bootstrap_servers, replay, replayed, first_partition=3)

    code, report = await reconciled(bootstrap_servers, live, replay, tmp_path / "same.json")

    assert code == 0
    assert report == {
        "a": {"source": live, "lines": 17, "unreadable": 1},
        "b": {"source": replay, "lines": 17, "unreadable": 0},
        "agree": 17,
        "differences": [],
        "by_kind": {},
    }
    captured = capsys.readouterr()
    assert captured.out == "A: 17 lines, B: 17 lines, agree: 17, differ: 0, unreadable: A 1, B 0\n"
    assert "1 unreadable, not decisions: partition " in captured.err

    await publish(bootstrap_servers, replay, [mue_denial(checked, "C1001", 1, 2)])

    code, report = await reconciled(bootstrap_servers, live, replay, tmp_path / "changed.json")

    assert code == 1
    assert report["agree"] == 16
    assert report["differences"] == [
        {
            "line": ["C1001", 1],
            "kind": "accept→deny MUE_EXCEEDED",
            "before": {"status": "accept", "edits": []},
            "after": {"status": "deny", "edits": ["MUE_EXCEEDED"]},
        }
    ]
    assert report["by_kind"] == {"accept→deny MUE_EXCEEDED": 1}
    assert capsys.readouterr().out.splitlines()[:2] == [
        "C1001#1       accept → deny MUE_EXCEEDED",
        "accept→deny MUE_EXCEEDED: 1",
    ]


async def test_a_topic_reconciles_with_the_check_output_of_the_same_input(
    bootstrap_servers: str, topics: tuple[str, str], checked: list[Wire], tmp_path: Path
) -> None:
    live, _ = topics
    check_output = tmp_path / "check.ndjson"
    check_output.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in checked))
    await publish(bootstrap_servers, live, live_history(checked))

    code, report = await reconciled(bootstrap_servers, check_output, live, tmp_path / "r.json")

    assert (code, report["agree"], report["differences"]) == (0, 17, [])

    await publish(bootstrap_servers, live, [mue_denial(checked, "C1010", 2, 3)])

    code, report = await reconciled(bootstrap_servers, live, check_output, tmp_path / "r.json")

    assert code == 1
    assert report["differences"] == [
        {
            "line": ["C1010", 2],
            "kind": "deny MUE_EXCEEDED→accept",
            "before": {"status": "deny", "edits": ["MUE_EXCEEDED"]},
            "after": {"status": "accept", "edits": []},
        }
    ]


async def test_a_missing_topic_exits_2_and_is_not_created(
    bootstrap_servers: str,
    topics: tuple[str, str],
    unique_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = f"edits-absent-{unique_name}"
    settings = Settings(bootstrap_servers=bootstrap_servers)

    chosen = reconcile_command.ReconcileOptions(topics[0], missing)
    assert await asyncio.to_thread(reconcile_command.run, settings, chosen) == 2

    assert capsys.readouterr() == (
        "",
        f"stream-edits reconcile: topic {missing} does not exist, nor a file of that name\n",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        assert missing not in await partition_counts(admin)
    finally:
        await admin.close()
