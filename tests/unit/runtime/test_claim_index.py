"""The claim index in the members table: one key per (claim, member), written with the member's
record on first sight of the claim, deleted when the claim entry expires, healed when lost, and
never taken for a member id by anything that reads the table's keys as members."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

import faust
import orjson
from faust.assignor.client_assignment import ClientAssignment
from faust.assignor.partition_assignor import PartitionAssignor
from faust.types import TP, TableT

from stream_edits.runtime.placement import owner_function
from stream_edits.runtime.processor import Processor
from stream_edits.runtime.state.claim_index import (
    INDEX_VALUE,
    claim_index_key,
    claim_index_prefix,
    indexed_member,
    is_member_key,
)
from stream_edits.runtime.state.tables import FaustMemberTable, LocalMemberTable
from tests.factories import T0, line
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor


def _record(offset: int, event: object, partition: int = 0) -> FakeRecord:
    return FakeRecord(offset, event.model_dump_json().encode(), partition=partition)  # type: ignore[attr-defined]


def _index(table: DictTable) -> set[tuple[str, str]]:
    """(claim_id, member_id) of every index key in the table."""
    found = set()
    for key in table.data:
        if not is_member_key(key):
            claim_id, member_id = key[2:].split(b"\xff")  # 0xFF: never in UTF-8
            found.add((claim_id.decode(), member_id.decode()))
    return found


def _claims(table: DictTable) -> set[tuple[str, str]]:
    """(claim_id, member_id) of every claim entry the member records hold."""
    return {
        (claim_id, key.decode())
        for key, value in table.data.items()
        if is_member_key(key)
        for claim_id in orjson.loads(value)["c"]
    }


def _changelog(producer: FakeProducer) -> list[tuple[int, bytes | None, bytes | None]]:
    return [
        (m.partition, m.key, m.value) for m in producer.messages if m.topic == "members-changelog"
    ]


async def _run(processor: Processor, records: list[FakeRecord]) -> None:
    await processor.process_batch(records, {})
    await processor.settle()


def test_index_keys_are_unambiguous_and_never_member_keys() -> None:
    key = claim_index_key("C 1", "M-é")
    assert key == b"\xffcC 1\xffM-\xc3\xa9" and key.startswith(claim_index_prefix("C 1"))
    assert not is_member_key(key) and is_member_key("M-é".encode())
    assert indexed_member(key, "C 1") == "M-é"
    assert indexed_member(key, "C") is None  # a claim id that is a prefix of another
    assert indexed_member(claim_index_key("C", "x"), "C 1") is None
    assert not claim_index_key("C", "M").startswith(claim_index_prefix("C 1"))
    assert indexed_member(claim_index_prefix("C"), "C") is None  # no member after the prefix


async def test_a_claim_is_indexed_on_first_sight_with_its_members_record() -> None:
    partitions = 4
    owner = owner_function(partitions)
    member = next(f"M{n}" for n in range(100) if owner(f"M{n}") == 2)
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=partitions)
    await _run(
        processor,
        [
            _record(0, line("C1", 1, "64461", member_id=member), partition=2),
            _record(1, line("C1", 2, "77002", member_id=member), partition=2),
            _record(2, line("C2", 1, "99213", member_id=member), partition=2),
        ],
    )
    # One record, then its index keys, all in the member's partition, in one delivery.
    assert _changelog(producer) == [
        (2, member.encode(), table.data[member.encode()]),
        (2, claim_index_key("C1", member), INDEX_VALUE),
        (2, claim_index_key("C2", member), INDEX_VALUE),
    ]
    assert _index(table) == _claims(table) == {("C1", member), ("C2", member)}
    # Another line of a known claim: the record is written again, the index key is not.
    producer.sent.clear(), producer.messages.clear()
    await _run(processor, [_record(3, line("C1", 3, "64462", member_id=member), partition=2)])
    assert [key for _, key, _ in _changelog(producer)] == [member.encode()]
    # A redelivery neither.
    producer.sent.clear(), producer.messages.clear()
    await _run(processor, [_record(4, line("C1", 3, "64462", member_id=member), partition=2)])
    assert [key for _, key, _ in _changelog(producer)] == [member.encode()]


async def test_a_lost_index_key_is_written_again_when_its_claim_is_next_put() -> None:
    # E.g. a batch whose record reached the changelog but whose index key did not: recovery
    # then restores the record without the key. The claim's next line (or its redelivery,
    # which re-puts the claim entry) writes it again.
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer)
    await _run(processor, [_record(0, line("C1", 1, "64461"))])
    del table.data[claim_index_key("C1", "M1")]
    assert _index(table) == set()
    await _run(fake_processor(table, producer=producer), [_record(0, line("C1", 1, "64461"))])
    assert _index(table) == _claims(table) == {("C1", "M1")}


async def test_expiry_deletes_the_index_keys_of_the_claims_it_drops() -> None:
    events = [line("C-idle", 1, "64461", member_id="IDLE", dos=T0.date())]
    for week in range(20):
        when = T0 + timedelta(weeks=week)
        events.append(
            line(
                f"C-busy-{week}",
                1,
                "64461",
                member_id="BUSY",
                dos=when.date(),
                minutes=week * 7 * 24 * 60,
            )  # fmt: skip
        )
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, horizon_days=30, producer=producer)
    for offset, event in enumerate(events):
        await _run(processor, [_record(offset, event)])
    assert b"IDLE" not in table.data and ("C-idle", "IDLE") not in _index(table)
    kept = _index(table)
    assert kept == _claims(table) and ("C-busy-19", "BUSY") in kept
    assert len(kept) < 20  # the early weeks' claims expired, their keys with them
    deleted = {key for _, key, value in _changelog(producer) if value is None}
    assert claim_index_key("C-idle", "IDLE") in deleted and claim_index_key("C-busy-0", "BUSY")
    assert claim_index_key("C-busy-0", "BUSY") in deleted
    # Expiry scanned the table's keys as members (member_ids): index keys are not among them.
    assert processor.members.member_ids() == ["BUSY"]


async def test_a_claim_undone_by_the_state_limit_is_not_indexed_and_earlier_ones_are() -> None:
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, member_state_max_bytes=8_000)
    records = [_record(n, line(f"C{n}", 1, "64461", minutes=n)) for n in range(120)]
    for start in range(0, 120, 10):  # batches of ten: undone lines among indexed ones
        await _run(processor, records[start : start + 10])
    assert processor.stats.dead_letters > 0
    assert _index(table) == _claims(table)
    assert len(_index(table)) == 120 - processor.stats.dead_letters


async def test_member_ids_skip_index_keys_in_every_table_kind(tmp_path: Path) -> None:
    table = DictTable()
    processor = fake_processor(table)
    await _run(processor, [_record(0, line("C1", 1, "64461")), _record(1, line("C2", 1, "99213"))])
    assert len(table.data) == 3
    assert list(table.stored_keys()) == [b"M1"]
    assert processor.members.member_ids() == ["M1"]
    local = LocalMemberTable(tmp_path / "replay")
    try:
        for key, value in table.data.items():
            local.write(0, [(key, value)])
        assert list(local.stored_keys()) == [b"M1"]
    finally:
        local.close()


def _faust_table(tmp_path: Path, store: str) -> tuple[faust.App, TableT[bytes, bytes]]:
    app = faust.App("index-test", store=store, datadir=str(tmp_path), autodiscover=False)
    table = cast(
        TableT[bytes, bytes],
        app.Table("members", partitions=4, key_type=bytes, value_type=bytes),
    )
    app.conf.tabledir.mkdir(parents=True, exist_ok=True)
    changelog = table.changelog_topic.get_topic_name()
    assignor = app.assignor
    assert isinstance(assignor, PartitionAssignor)
    assignor._assignment = ClientAssignment(actives={changelog: [0, 1, 2, 3]}, standbys={})
    return app, table


async def test_the_faust_tables_skip_index_keys_and_scan_a_claims_keys(tmp_path: Path) -> None:
    for store in ("rocksdb://", "memory://"):
        _, table = _faust_table(tmp_path / store[:-3], store)
        members = FaustMemberTable(table)
        owner = owner_function(4)
        keys: dict[int, list[bytes]] = {}
        for member in ("A", "B", "C", "D", "E"):
            partition = owner(member)
            members.write(partition, [(member.encode(), b"{}")])
            for claim_id in ("C", "C1", "C 1"):
                members.write(partition, [(claim_index_key(claim_id, member), INDEX_VALUE)])
            keys.setdefault(partition, []).append(claim_index_key("C1", member))
        assert sorted(members.stored_keys()) == [b"A", b"B", b"C", b"D", b"E"], store
        for partition in range(4):
            found = list(members.keys_with_prefix(partition, claim_index_prefix("C1")))
            if store == "rocksdb://":  # per partition
                assert found == sorted(keys.get(partition, [])), (store, partition)
            else:  # the memory store keeps no partitions: every partition's keys
                assert found == sorted(k for ks in keys.values() for k in ks), store
        assert members.get(owner("A"), claim_index_key("C", "A")) == INDEX_VALUE
        assert TP(members.changelog_topic, 0).partition == 0
