"""The Faust and aiokafka internals `runtime/transport.py`, `runtime/faust_compat.py`,
`runtime/state/tables.py`, `runtime/delivery.py` and `runtime/state/healing.py` override or call
(the latter's older grafts are pinned in test_state_healing.py): each must still exist with the
parameters the project relies on. A failure names the method; re-test the graft against the new
version before changing the expectation (and the pins in pyproject.toml)."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from faust.web.base import PRODUCTION_BLUEPRINTS, BlueprintManager
from mode.threads import ServiceThread

# (owner, attribute, the parameters the project passes or overrides, excluding self)
GRAFTS = [
    # transport.py: BatchingConsumer overrides these, InboxFeedingThread these and calls
    # _fetch_records from its own task
    (faust_aiokafka.Consumer, "_getmany", ["active_partitions", "timeout"]),
    (faust_aiokafka.Consumer, "_new_consumer_thread", []),
    (AIOKafkaConsumerThread, "_create_worker_consumer", ["transport"]),
    (AIOKafkaConsumerThread, "on_start", []),
    (AIOKafkaConsumerThread, "on_thread_stop", []),
    (
        AIOKafkaConsumerThread,
        "_fetch_records",
        ["consumer", "active_partitions", "timeout", "max_records"],
    ),
    (AIOKafkaConsumer, "seek", ["partition", "offset"]),
    (faust_aiokafka.Consumer, "_new_offset", ["tp"]),
    (faust_aiokafka.Consumer, "_filter_tps_with_pending_acks", ["topics"]),
    (faust_aiokafka.Consumer, "wait_empty", []),
    (faust_aiokafka.Consumer, "on_partitions_assigned", ["assigned", "generation_id"]),
    # transport.py: under exactly_once BatchingConsumer.commit settles the batches first
    (faust_aiokafka.Consumer, "commit", ["topics", "start_new_transaction"]),
    # faust_compat.py: the RocksDB partition databases and the producer behind Faust's
    (RocksDBStore, "_db_for_partition", ["partition"]),
    (faust_aiokafka.Producer, "_ensure_producer", []),
    # state/tables.py: persisted changelog offsets, as Faust writes them after a changelog send
    (RocksDBStore, "set_persisted_offset", ["tp", "offset"]),
    (TableManager, "persist_offset_on_commit", ["store", "tp", "offset"]),
    # state_healing.py: the restore's end from the broker, offsets persisted on commit
    (Recovery, "_build_highwaters", ["consumer", "tps", "destination", "title"]),
    (Recovery, "_seek_offsets", ["consumer", "tps", "offsets", "title"]),
    (AIOKafkaConsumer, "end_offsets", ["partitions"]),
    (TableManager, "on_commit", ["offsets"]),
    (TableManager, "on_partitions_revoked", ["revoked"]),
    # delivery.py: record batches on the aiokafka producer
    (AIOKafkaProducer, "create_batch", []),
    (AIOKafkaProducer, "send_batch", ["batch", "topic", "partition"]),
    (BatchBuilder, "append", ["timestamp", "key", "value", "headers"]),
]


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    GRAFTS,
    ids=[f"{owner.__module__}.{owner.__qualname__}.{name}" for owner, name, _ in GRAFTS],
)
def test_the_internal_still_exists_with_the_parameters_we_rely_on(
    owner: type, name: str, parameters: list[str]
) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{name}"
    assert hasattr(owner, name), f"{where} is gone: the graft that uses it must be redone"
    found = [p for p in inspect.signature(getattr(owner, name)).parameters if p != "self"]
    assert found == parameters, f"{where} changed its parameters: {found} (was {parameters})"


def test_the_consumer_attributes_the_inbox_reads_are_still_there() -> None:
    assert "flow_active" in dir(FaustConsumer), "faust Consumer.flow_active is gone"
    assert "_active_partitions" in FaustConsumer.__annotations__, (
        "faust Consumer._active_partitions is gone"
    )
    assert "self._active_partitions.update(" in inspect.getsource(FaustConsumer._set_active_tps)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer, (
        "faust's aiokafka Transport no longer names its consumer class in `Consumer`"
    )


def test_every_commit_of_faust_goes_through_the_consumers_commit() -> None:
    # BatchingConsumer.commit settles every batch before a transaction commits: a commit path
    # that bypassed it would commit outputs without their offsets again.
    for name in ("_commit_handler", "commit_and_end_transactions", "on_task_error"):
        member = getattr(FaustConsumer, name)
        source = inspect.getsource(getattr(member, "fun", member))  # a Service task wraps it
        assert "await self.commit(" in source, f"faust Consumer.{name} no longer calls commit()"
    source = inspect.getsource(FaustConsumer)
    assert source.count("self.force_commit(") == 1, "faust commits somewhere besides commit()"
    assert "self.in_transaction = self.app.in_transaction" in source, (
        "faust Consumer.in_transaction is gone"
    )


@pytest.mark.parametrize(("package", "minor"), [("faust-streaming", "0.15"), ("aiokafka", "0.14")])
def test_the_installed_versions_are_the_ones_tested(package: str, minor: str) -> None:
    assert version(package).startswith(minor + "."), (
        f"{package} {version(package)} is not the tested {minor}.x: run the suite and the "
        "kill tests, then move the pin in pyproject.toml"
    )


def test_the_production_index_web_dashboard_drops_from_root_is_still_where_it_was() -> None:
    # runtime/web/dashboard.py (leave_root_to_the_project) filters Faust's production index out of
    # the
    # blueprint manager's private `_enabled` list before the server starts, so that `/` serves
    # the dashboard and not {"status": "OK"}.
    index = ("", "faust.web.apps.production_index:blueprint")
    assert index in list(PRODUCTION_BLUEPRINTS), f"the index moved: {PRODUCTION_BLUEPRINTS}"
    app = faust.App("internals-web", web_stats_enabled=False, autodiscover=False)
    manager = app.web.blueprints
    assert isinstance(manager, BlueprintManager)
    assert manager.applied is False
    assert isinstance(manager._enabled, list), "BlueprintManager._enabled is no longer a list"
    assert index in manager._enabled, f"the index is no longer in _enabled: {manager._enabled}"
    manager._enabled.remove(index)  # what the dashboard does; then nothing mounts at "/"
    app.web.init_server()
    assert "/" not in {r.resource.canonical for r in app.web.web_app.router.routes() if r.resource}


async def test_faust_routes_a_member_key_to_the_partition_placement_gives_it(
    tmp_path: Path,
) -> None:
    # runtime/web/lookups.py routes a member's look-up to the worker holding placement's owner
    # partition, per Faust's assignment metadata (Router.table_metadata: canonical URL →
    # changelog partitions) and local actives (PartitionAssignor.assigned_actives): the same
    # worker Faust's own routing (Router.key_store: the producer's partitioner over the table's
    # serialized key) names. It reads app.rebalancing, app.in_recovery and app.http_client, and
    # sets conf.canonical_url after the app is built (STREAM_EDITS_WEB_URL).
    from faust.assignor.client_assignment import ClientAssignment
    from faust.assignor.partition_assignor import PartitionAssignor
    from yarl import URL

    from stream_edits.runtime.app import create_app
    from stream_edits.runtime.placement import owner_function
    from stream_edits.settings import Settings

    settings = Settings(store="memory://", data_dir=tmp_path, web_url="http://w1.example:7001")
    app = create_app(settings)
    assert app.conf.canonical_url == URL("http://w1.example:7001"), "canonical_url not settable"
    for name in ("rebalancing", "in_recovery"):
        assert getattr(app, name) is False, f"App.{name} is gone or no longer a flag"
    assert hasattr(type(app), "http_client"), "App.http_client is gone"
    changelog = app.tables["members"].changelog_topic.get_topic_name()
    assignor = app.assignor
    assert isinstance(assignor, PartitionAssignor)
    assignor._assignment = ClientAssignment(actives={changelog: [0, 2]}, standbys={})
    assert assignor.assigned_actives() == {TP(changelog, 0), TP(changelog, 2)}
    hosts = {"http://w1.example:7001": [0, 2], "http://w2.example:7002": [1, 3]}
    assignor.changelog_distribution = {url: {changelog: held} for url, held in hosts.items()}
    assert app.router.table_metadata("members") == {
        url: {changelog: held} for url, held in hosts.items()
    }
    # The producer's view of the changelog topic, as its metadata gives it on a running worker.
    faust_producer = app.producer
    faust_producer._producer = faust_producer._new_producer()  # type: ignore[attr-defined]
    cluster = faust_producer._ensure_producer()._metadata  # type: ignore[attr-defined]
    partitions = set(range(settings.partitions))
    cluster.partitions_for_topic = lambda topic: partitions if topic == changelog else None
    cluster.available_partitions_for_topic = lambda topic: partitions
    owner = owner_function(settings.partitions)
    for n in range(500):
        member_id = f"member-{n}-é"
        holder = next(url for url, held in hosts.items() if owner(member_id) in held)
        assert app.router.key_store("members", member_id.encode()) == URL(holder), member_id


def test_a_partitions_transaction_is_where_faust_keeps_and_commits_it() -> None:
    # faust_compat.transaction_of: under exactly_once, sends join the transaction of the
    # consumed partition, found under the name Faust gives it and its commit uses, and appended
    # under the lock Faust's commit holds.
    from faust.assignor.partition_assignor import PartitionAssignor
    from faust.transport.consumer import TransactionManager

    commit = inspect.getsource(TransactionManager.commit)
    assert "group_for_topic(tp.topic)" in commit and '"{group_id}-{group}-{tp.partition}"' in commit
    assert "producer" in inspect.signature(TransactionManager.__init__).parameters
    commit_all = inspect.getsource(faust_aiokafka.Producer.commit_transactions)
    assert "self._trn_locks[transactional_id]" in commit_all
    assert "self._transaction_producers" in inspect.getsource(faust_aiokafka.Producer)
    assert "group_for_topic" in vars(PartitionAssignor)


def test_recovery_takes_the_active_restore_end_from_build_highwaters() -> None:
    # state_healing.HealingRecovery._build_highwaters asks the broker for the high watermark
    # under exactly_once: Faust's consumer answers aiokafka's last stable offset there, None
    # until a fetch response came back (robinhood/faust #658), and recovery read None as -1.
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    restart = inspect.getsource(Recovery._restart_recovery.fun)
    assert "consumer, assigned_active_tps, active_highwaters" in restart, (
        "faust Recovery._restart_recovery no longer fills active_highwaters by _build_highwaters"
    )
    assert "highwater - offsets[tp]" in inspect.getsource(Recovery.active_remaining), (
        "faust Recovery.active_remaining no longer counts up to active_highwaters"
    )
    assert "last_stable_offset(tp)" in inspect.getsource(AIOKafkaConsumerThread._highwaters), (
        "faust's consumer no longer answers the last stable offset under exactly_once: "
        "re-check whether state_healing still needs to ask the broker itself"
    )
    slurp = inspect.getsource(Recovery._slurp_changelogs.fun)
    assert "detect_aborted_tx" in slurp and "offsets[tp] = highwater" in slurp, (
        "faust recovery no longer ends a read_committed restore whose last offsets are "
        "transaction markers by moving the offset to the highwater (HealingRecovery puts the "
        "active offsets back around _seek_offsets because of that move)"
    )
    restart = inspect.getsource(Recovery._restart_recovery.fun)
    build, seek = restart.find("self._build_offsets)"), restart.find("self._seek_offsets)")
    assert -1 < build < seek, "faust recovery no longer seeks after building the offsets"


def test_pending_changelog_offsets_are_kept_by_changelog_and_committed_by_source() -> None:
    # state_healing.HealingTableManager.on_commit persists a pending changelog offset when the
    # transaction it was written in commits: Faust keeps it by changelog partition and looked
    # it up by the committed source partition, so it was never persisted (robinhood/faust #599).
    from faust.transport.consumer import TransactionManager

    assert "self._pending_persisted_offsets[tp] = (store, offset)" in inspect.getsource(
        TableManager.persist_offset_on_commit
    ), "faust TableManager.persist_offset_on_commit no longer keeps (store, offset) by TP"
    assert "self.app.tables.on_commit(committable_offsets)" in inspect.getsource(FaustConsumer), (
        "faust Consumer no longer tells the tables which source offsets it committed"
    )
    assert "group_for_topic(tp.topic)" in inspect.getsource(TransactionManager.commit), (
        "faust no longer names a transaction by the topic group of the committed partition"
    )
    app = faust.App("internals-tables", autodiscover=False)
    from stream_edits.runtime.state.healing import HealingTableManager, install_state_healing
    from stream_edits.settings import Settings

    install_state_healing(app, Settings(bootstrap_servers="127.0.0.1:1"))
    assert isinstance(app.tables, HealingTableManager), "faust's TableManager setting is gone"


def test_the_consumer_thread_can_take_records_as_they_arrive_without_skipping_any() -> None:
    # transport.InboxFeedingThread takes the input topics' records in Faust's consumer thread.
    # Why: aiokafka sends a broker no new fetch while records of its last one wait to be taken.
    from aiokafka.consumer.fetcher import Fetcher

    actions = inspect.getsource(Fetcher._get_actions_per_node)
    assert "if tp in self._records:" in actions, (
        "aiokafka no longer holds a node's next fetch while its records wait: re-measure "
        "whether taking them in the consumer thread still pays"
    )
    # Faust's _fetch_records: nothing while the flow is stopped, the fetch counted as a poll
    # (aiokafka leaves the group after max_poll_interval without one).
    fetch = inspect.getsource(AIOKafkaConsumerThread._fetch_records)
    assert "if not self.consumer.flow_active:" in fetch and "fetch_context()" in fetch
    # No take during a rebalance of this consumer: aiokafka begins the reassignment on the
    # consumer thread before it calls the revoke listener, and fetched_records waits it out.
    prepare = inspect.getsource(GroupCoordinator._on_join_prepare)
    assert prepare.index("begin_reassignment()") < prepare.index("on_partitions_revoked")
    assert "reassignment_in_progress" in inspect.getsource(Fetcher.fetched_records)
    # Faust stops the flow before it drains the consumer on a revoke, and seeks the stream
    # partitions to their committed offsets before it starts the flow again: records taken
    # and refused (sought back) or dropped meanwhile are fetched again.
    revoked = inspect.getsource(faust.App._on_partitions_revoked)
    assert revoked.index("consumer.stop_flow") < revoked.index("_consumer_wait_empty")
    resume = inspect.getsource(Recovery._resume_streams)
    assert resume.index("perform_seek()") < resume.index("consumer.resume_flow()")
    # The fetch size and wait set on Faust's client before it starts reach its fetcher.
    start = inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_min_bytes=self._fetch_min_bytes" in start
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
    create = inspect.getsource(AIOKafkaConsumerThread.on_start)
    assert create.index("_create_consumer(") < create.index(".start()")
    # The consumer thread has the main loop at hand (a fetch error crashes the app there).
    assert "self.parent_loop = " in inspect.getsource(ServiceThread.__init__)
