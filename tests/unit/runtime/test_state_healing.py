"""Stale local table state heals itself: the decisions on real RocksDB stores, and the Faust
internals the healing relies on (these fail naming the internal when Faust changes it)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import faust
import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.types.transports import ConsumerT
from mode import Service
from rocksdict import Rdict

from stream_edits.runtime.state import healing as state_healing
from stream_edits.runtime.state.healing import (
    CLUSTER_ID_FILE,
    ClusterCheck,
    HealingRecovery,
    HealingTableManager,
    RestoreEndUnknown,
    forget_other_cluster,
    install_state_healing,
)
from stream_edits.settings import Settings

LOGGER = state_healing.__name__


class FakeConsumer:
    """Answers `earliest_offsets` like a changelog never compacted: offset 0 everywhere, and
    `highwaters` with the given end offsets (the next offset to be written)."""

    def __init__(self, ends: dict[int, int | None] | None = None) -> None:
        self.ends = ends or {}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def highwaters(self, *tps: TP) -> dict[TP, int | None]:
        return {tp: self.ends.get(tp.partition) for tp in tps}


CONSUMER = cast(ConsumerT, FakeConsumer())


def healing_app(tmp_path: Path, guarantee: str) -> faust.App:
    """An app as `create_app` makes it (healing installed, RocksDB), with a `members` table."""
    app = faust.App(
        "healing",
        store="rocksdb://",
        datadir=str(tmp_path),
        processing_guarantee=guarantee,
        autodiscover=False,
    )
    install_state_healing(app, Settings(bootstrap_servers="127.0.0.1:1"))
    app.Table("members", partitions=4, key_type=bytes, value_type=bytes)
    app.conf.tabledir.mkdir(parents=True)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    yield healing_app(tmp_path, "at_least_once")


@pytest.fixture
def eos_app(tmp_path: Path) -> Iterator[faust.App]:
    app = healing_app(tmp_path, "exactly_once")
    app.in_worker = True  # what `faust worker` sets: App.in_transaction holds in a worker only
    yield app


def members(app: faust.App) -> tuple[Collection, RocksDBStore]:
    table = app.tables["members"]
    assert isinstance(table, Collection) and isinstance(table.data, RocksDBStore)
    return table, table.data


def changelog(app: faust.App, partition: int) -> TP:
    return TP(members(app)[0].changelog_topic.get_topic_name(), partition)


def write_state(app: faust.App, partition: int, persisted: int) -> None:
    """A member record in `partition`, its changelog persisted up to offset `persisted`."""
    _, store = members(app)
    store._db_for_partition(partition).put(f"member-{partition}".encode(), b"{}")
    store.set_persisted_offset(changelog(app, partition), persisted)


def stored(app: faust.App, partition: int) -> list[bytes]:
    return list(members(app)[1]._db_for_partition(partition).keys())


def recovery(app: faust.App) -> HealingRecovery:
    found = cast(TableManager, app.tables).recovery
    assert isinstance(found, HealingRecovery)
    return found


async def test_only_a_partition_ahead_of_its_changelog_is_wiped_and_read_from_the_start(
    app: faust.App, caplog: pytest.LogCaptureFixture
) -> None:
    ends = {0: 0, 1: 6, 2: 8}  # the broker's end offsets; 0: an empty (recreated) changelog
    for partition, persisted in {0: 57, 1: 5, 2: 3}.items():  # ahead, equal, behind
        write_state(app, partition, persisted)
    healing = recovery(app)
    table, _ = members(app)
    tps = {changelog(app, p) for p in ends}
    for tp in tps:
        healing.add_active(table, tp)  # reads the persisted offsets, as on a rebalance
    consumer = cast(ConsumerT, FakeConsumer(dict(ends)))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await healing._build_highwaters(consumer, tps, healing.active_highwaters, "active")
        await healing._build_offsets(consumer, tps, healing.active_offsets, "active")

    assert {tp.partition: healing.active_highwaters[tp] for tp in tps} == {0: -1, 1: 5, 2: 7}
    assert stored(app, 0) == []  # the record and Faust's offset key
    assert stored(app, 1) == [RocksDBStore.offset_key, b"member-1"]
    assert stored(app, 2) == [RocksDBStore.offset_key, b"member-2"]
    assert {tp.partition: healing.active_offsets[tp] for tp in tps} == {0: -1, 1: 5, 2: 3}
    [warning] = [r for r in caplog.records if r.name == LOGGER]
    assert warning.levelno == logging.WARNING
    message, topic = warning.getMessage(), changelog(app, 0).topic
    assert message.startswith(f"table members: local state is ahead of changelog {topic} in ")
    assert "in partition 0 (local offset 57, changelog's last -1); discarded it" in message
    assert "member-" not in message


async def test_a_last_offset_the_broker_did_not_report_wipes_nothing(app: faust.App) -> None:
    # Faust's own highwaters turned an unknown end into -1: read as "empty changelog", it
    # wiped every partition with state. Only the broker's report counts.
    write_state(app, 1, 40)
    healing = recovery(app)
    tp = changelog(app, 1)
    healing.add_active(members(app)[0], tp)
    healing.active_highwaters[tp] = -1

    await healing._build_offsets(CONSUMER, {tp}, healing.active_offsets, "active")

    assert stored(app, 1) == [RocksDBStore.offset_key, b"member-1"]
    assert healing.active_offsets[tp] == 40


async def test_an_end_offset_the_broker_does_not_give_is_an_error_not_an_empty_changelog(
    app: faust.App,
) -> None:
    write_state(app, 2, 40)
    healing = recovery(app)
    tps = {changelog(app, 1), changelog(app, 2)}
    consumer = cast(ConsumerT, FakeConsumer({1: 12, 2: None}))

    with pytest.raises(RestoreEndUnknown, match="members-changelog"):
        await healing._build_highwaters(consumer, tps, healing.active_highwaters, "active")

    assert not healing.active_highwaters and not healing.changelog_ends
    assert stored(app, 2) == [RocksDBStore.offset_key, b"member-2"]


async def test_exactly_once_restores_to_the_high_watermark_the_broker_reports(
    eos_app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under exactly_once Faust's consumer answers aiokafka's last stable offset, None until a
    # fetch response came back: after a rebalance recovery then skipped the restore.
    healing = recovery(eos_app)
    tps = {changelog(eos_app, p) for p in range(3)}
    lso_after_rebalance = cast(ConsumerT, FakeConsumer({}))  # None everywhere
    asked: list[set[TP]] = []

    async def high_watermarks(asked_for: set[TP]) -> dict[TP, int]:
        asked.append(set(asked_for))
        return {tp: 10 * (tp.partition + 1) for tp in asked_for}

    monkeypatch.setattr(healing, "high_watermarks", high_watermarks)
    for tp in tps:
        healing.add_active(members(eos_app)[0], tp)

    await healing._build_highwaters(lso_after_rebalance, tps, healing.active_highwaters, "active")
    await healing._build_offsets(CONSUMER, tps, healing.active_offsets, "active")

    assert asked == [tps]
    assert {tp.partition: healing.active_highwaters[tp] for tp in tps} == {0: 9, 1: 19, 2: 29}
    assert healing.changelog_ends == dict(healing.active_highwaters)
    assert healing.need_recovery()  # every partition reads its changelog from the start


async def test_the_restore_starts_from_the_persisted_offset_whatever_moved_it_before_the_seek(
    eos_app: faust.App,
) -> None:
    # Faust's aborted-transaction check runs beside recovery: with the consumer's position of
    # an earlier assignment it moves an offset to the highwater, and the restore was skipped.
    write_state(eos_app, 0, 30)
    healing = recovery(eos_app)
    tp = changelog(eos_app, 0)
    healing.add_active(members(eos_app)[0], tp)
    healing.changelog_ends[tp] = healing.active_highwaters[tp] = 90
    healing.active_offsets[tp] = 90  # moved after add_active read the persisted 30

    await healing._build_offsets(CONSUMER, {tp}, healing.active_offsets, "active")
    assert healing.active_offsets[tp] == 30

    healing.active_offsets[tp] = 90  # moved again, between the offsets and the seek
    seeks: list[dict[TP, int]] = []

    class Seeking(FakeConsumer):
        async def seek_wait(self, offsets: dict[TP, int]) -> None:
            seeks.append(dict(offsets))

    await healing._seek_offsets(cast(ConsumerT, Seeking()), {tp}, healing.active_offsets, "active")
    assert healing.active_offsets[tp] == 30 and healing.need_recovery()
    assert seeks == [{tp: 30}]


def test_a_changelog_offset_is_persisted_when_its_transaction_commits(
    eos_app: faust.App,
) -> None:
    tables = eos_app.tables
    assert isinstance(tables, HealingTableManager)
    _, store = members(eos_app)
    log_1, log_2 = changelog(eos_app, 1), changelog(eos_app, 2)
    eos_app.assignor._topic_groups = {  # type: ignore[attr-defined]
        "claim-lines": 0, "repartition": 0, log_1.topic: 0, "other-input": 1,
    }  # fmt: skip
    tables.persist_offset_on_commit(store, log_1, 41)  # what the member cache does in a transaction
    tables.persist_offset_on_commit(store, log_2, 7)

    tables.on_commit({TP("other-input", 1): 5, TP("claim-lines", 0): 3})  # other transactions
    assert store.persisted_offset(log_1) is None and store.persisted_offset(log_2) is None

    tables.on_commit({TP("repartition", 1): 100})  # the transaction of changelog partition 1
    assert store.persisted_offset(log_1) == 41
    assert store.persisted_offset(log_2) is None

    tables.on_partitions_revoked({TP("claim-lines", 2)})  # uncommitted: aborted by the revoke
    tables.on_commit({TP("claim-lines", 2): 9})
    assert store.persisted_offset(log_2) is None


async def test_standby_offsets_are_left_to_faust(app: faust.App) -> None:
    write_state(app, 3, 57)
    healing = recovery(app)
    tp = changelog(app, 3)
    healing.add_standby(members(app)[0], tp)
    healing.active_highwaters[tp] = -1

    await healing._build_offsets(CONSUMER, {tp}, healing.standby_offsets, "standby")

    assert healing.standby_offsets[tp] == 57
    assert stored(app, 3) == [RocksDBStore.offset_key, b"member-3"]


def test_state_from_another_cluster_is_discarded_with_one_warning(
    app: faust.App, caplog: pytest.LogCaptureFixture
) -> None:
    marker = Path(app.conf.appdir) / CLUSTER_ID_FILE
    write_state(app, 0, 10)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert not forget_other_cluster(app, None)  # a broker too old to name its cluster
        assert not marker.exists()
        assert not forget_other_cluster(app, "cluster-a")  # none remembered: kept
        assert marker.read_text() == "cluster-a\n"
        assert not forget_other_cluster(app, "cluster-a")
        assert stored(app, 0) == [RocksDBStore.offset_key, b"member-0"]
        assert not caplog.records

        assert forget_other_cluster(app, "cluster-b")

    assert marker.read_text() == "cluster-b\n"
    assert app.conf.tabledir.is_dir() and not any(app.conf.tabledir.iterdir())
    assert stored(app, 0) == []  # a new, empty database
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "cluster-b is not cluster-a" in warning.getMessage()


@pytest.mark.parametrize("mode", ["worker", "producer_only", "client_only"])
async def test_the_cluster_check_runs_for_workers_only(
    app: faust.App, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    async def cluster_id(settings: Settings) -> str:
        return "cluster-a"

    monkeypatch.setattr(state_healing, "cluster_id", cluster_id)
    if mode != "worker":
        setattr(app, mode, True)
    await ClusterCheck(app, Settings()).on_start()
    assert (Path(app.conf.appdir) / CLUSTER_ID_FILE).exists() == (mode == "worker")


def test_the_cluster_check_starts_before_the_consumer_and_the_tables(app: faust.App) -> None:
    for service in app.on_init_dependencies():  # what mode adds when the app starts
        app.add_dependency(service)
    children = app._children
    check = next(i for i, child in enumerate(children) if isinstance(child, ClusterCheck))
    assert check < children.index(app.consumer)
    assert check < children.index(app.tables)


# --- the Faust and mode internals state_healing relies on -----------------------------------


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_faust_recovery_still_builds_active_offsets_after_the_highwaters() -> None:
    assert parameters(Recovery._build_offsets) == [
        "self", "consumer", "tps", "destination", "title",
    ], "faust Recovery._build_offsets(consumer, tps, destination, title) changed"  # fmt: skip
    source = inspect.getsource(Recovery._restart_recovery.fun)
    highwaters = source.find("self._build_highwaters")
    offsets = source.find("self._build_offsets")
    check = source.find("ConsistencyError")
    assert -1 < highwaters < offsets < check, (
        "faust Recovery._restart_recovery no longer builds the active highwaters, then the "
        "active offsets (_build_offsets), then checks consistency"
    )
    recovery = Recovery.__init__
    for name in ("active_offsets", "active_highwaters", "tp_to_table"):
        assert f"self.{name} =" in inspect.getsource(recovery), f"faust Recovery.{name} is gone"


def test_faust_table_manager_still_takes_its_recovery_from_recovery_attribute(
    app: faust.App,
) -> None:
    assert "_recovery" in vars(TableManager), "faust TableManager._recovery is gone"
    assert isinstance(cast(TableManager, app.tables).recovery, HealingRecovery), (
        "faust TableManager.recovery no longer returns TableManager._recovery"
    )


def test_faust_rocksdb_store_still_opens_rocksdict_partition_databases_with_db_for_partition(
    app: faust.App,
) -> None:
    assert parameters(RocksDBStore._db_for_partition) == ["self", "partition"], (
        "faust RocksDB Store._db_for_partition(partition) changed"
    )
    database = members(app)[1]._db_for_partition(0)
    assert isinstance(database, Rdict), "faust's RocksDB store no longer opens rocksdict databases"


def test_mode_still_starts_dependencies_one_at_a_time_in_order() -> None:
    source = inspect.getsource(Service._actually_start)
    assert "for child in self._children:" in source and "await child.maybe_start()" in source, (
        "mode Service._actually_start no longer starts its children one after the other"
    )
