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

from stream_edits.settings import Settings
from stream_edits.stream import state_healing
from stream_edits.stream.state_healing import (
    CLUSTER_ID_FILE,
    ClusterCheck,
    HealingRecovery,
    forget_other_cluster,
    install_state_healing,
)

LOGGER = state_healing.__name__


class FakeConsumer:
    """Answers `earliest_offsets` like a changelog never compacted: offset 0 everywhere."""

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)


CONSUMER = cast(ConsumerT, FakeConsumer())


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    """An app as `create_app` makes it (healing installed, RocksDB), with a `members` table."""
    app = faust.App("healing", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    install_state_healing(app, Settings(bootstrap_servers="127.0.0.1:1"))
    app.Table("members", partitions=4, key_type=bytes, value_type=bytes)
    app.conf.tabledir.mkdir(parents=True)
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
    last_offsets = {0: -1, 1: 5, 2: 7}  # 0: an empty (recreated) changelog
    for partition, persisted in {0: 57, 1: 5, 2: 3}.items():  # ahead, equal, behind
        write_state(app, partition, persisted)
    healing = recovery(app)
    table, _ = members(app)
    tps = {changelog(app, p) for p in last_offsets}
    for tp in tps:
        healing.add_active(table, tp)  # reads the persisted offsets, as on a rebalance
        healing.active_highwaters[tp] = last_offsets[tp.partition]

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await healing._build_offsets(CONSUMER, tps, healing.active_offsets, "active")

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
