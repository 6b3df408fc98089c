"""Local table state that disagrees with the broker heals itself.

After `kafka start --fresh`, a topic recreated or a cluster restored, the RocksDB partitions in
the data dir can be ahead of their changelogs; Faust's recovery then raises ConsistencyError at
every start. Here, as Kafka Streams does with a corrupted task, such state is discarded and
restored from the changelog, with one warning:

- another Kafka cluster (its id differs from the one remembered in the app dir): every table's
  local state is discarded before anything opens it. This also catches a new cluster whose
  changelog has already grown past the old offsets.
- a partition whose persisted changelog offset is past the changelog's last offset as the broker
  reports it: that partition's state is wiped when recovery reads the offsets, and its whole
  changelog is read.

Under exactly_once, recovery also learns where each changelog ends as Kafka Streams does
(robinhood/faust #658): Faust asks its read_committed consumer for the last stable offset, which
aiokafka only knows after a fetch response and reports as None after a rebalance; Faust turned
that into -1 ("empty changelog"), so the next owner of a partition skipped its restore. Here the
broker's high watermark is asked with read_uncommitted, the restore reads read_committed up to it
(Faust's recovery waits out an open transaction: it ends when its producer is fenced), and an end
the broker did not report is an error, never -1. Changelog offsets written in a transaction are
persisted when that transaction commits (Faust looked them up by the committed source partition,
not the changelog partition they were recorded under, so none was ever persisted; faust #599).

Every reach into Faust and mode internals for this is here, each pinned by
tests/unit/runtime/test_state_healing.py or (the exactly_once ones) test_faust_internals.py:

- `TableManager._recovery` is set to a `HealingRecovery`: the manager's `recovery` property
  builds a plain `Recovery`, and no setting names another class.
- The app's `TableManager` setting names `HealingTableManager`, whose `on_commit` persists the
  pending offsets (`TableManager._pending_persisted_offsets`, keyed by changelog partition) of
  the transactions a commit committed; a transaction is named by the topic group
  (`PartitionAssignor.group_for_topic`) and the partition, as Faust's `TransactionManager.commit`
  names it.
- `Recovery._build_highwaters` is overridden: `_restart_recovery` calls it for the active
  partitions before `_build_offsets`, and reads `active_highwaters` as the last offset to restore.
- `Recovery._seek_offsets` is overridden to put back the active offsets `_build_offsets` chose:
  the check for aborted transactions in `_slurp_changelogs` (exactly_once) runs every 5 s beside
  `_restart_recovery` and sets an offset to its highwater when the consumer's position is past
  it, which before the seek is the position of an earlier assignment: the restore was skipped.
- `Recovery._build_offsets` is overridden, reading and resetting `active_offsets` against
  `active_highwaters`: `_restart_recovery` calls it after reading the highwaters and before its
  consistency check, the one point where the offsets recovery starts from can be changed.
- RocksDB `Store._db_for_partition`: the store discards whole tables (`reset_state`), not one
  partition, so that partition's (rocksdict) database is emptied in place, Faust's offset key
  with it; the database object stays the one Faust and the member table hold.
- The cluster check is a dependency of the app added before the app adds its own (producer,
  consumer, tables): mode starts dependencies one at a time in that order, so no table database
  is open yet when it runs.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import cast

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.types.transports import ConsumerT
from mode import Service
from rocksdict import WriteBatch

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings

log = logging.getLogger(__name__)

# In the app dir (next to the tables dir): the id of the cluster the tables were built from.
CLUSTER_ID_FILE = "kafka-cluster-id"


def install_state_healing(app: faust.App, settings: Settings) -> None:
    """Make `app`'s worker discard local table state that the broker's changelogs disagree with.

    Call it before the worker starts, before any other dependency is added to the app.
    """
    app.conf.TableManager = HealingTableManager  # type: ignore[assignment]  # before app.tables
    tables = cast(TableManager, app.tables)
    # No `loop=`: like App.tables, the service binds the running loop when it starts.
    tables._recovery = HealingRecovery(app, tables, settings=settings, beacon=tables.beacon)
    app.add_dependency(ClusterCheck(app, settings))


class RestoreEndUnknown(RuntimeError):
    """The broker did not report where a changelog partition ends: its restore cannot start."""


def transaction_key(app: faust.App, tp: TP) -> tuple[int, int]:
    """The (topic group, partition) naming the transaction that writes and commits `tp`."""
    return app.assignor.group_for_topic(tp.topic), tp.partition


class HealingTableManager(TableManager):
    """Faust's table manager, persisting a changelog offset when its transaction commits."""

    def on_commit(self, offsets: MutableMapping[TP, int]) -> None:
        """The source partitions in `offsets` committed their transactions: persist the changelog
        offsets written in them (exactly_once only records pending offsets)."""
        pending = self._pending_persisted_offsets
        if not pending:  # at_least_once: offsets were persisted as they were written
            return
        app = cast(faust.App, self.app)
        committed = {transaction_key(app, tp) for tp in offsets}
        for tp in [tp for tp in pending if transaction_key(app, tp) in committed]:
            store, offset = pending.pop(tp)
            store.set_persisted_offset(tp, offset)

    def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Forget pending offsets: what was committed is persisted, the rest was aborted."""
        self._pending_persisted_offsets.clear()
        super().on_partitions_revoked(revoked)


class HealingRecovery(Recovery):
    """Faust's table recovery, restoring to the changelog's end as the broker reports it and
    discarding an active partition's state ahead of it."""

    def __init__(self, *args: object, settings: Settings, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        # Per active changelog partition, its last offset as the broker reported it.
        self.changelog_ends: dict[TP, int] = {}
        self._ends_client: AIOKafkaConsumer | None = None
        # The active offsets the restore starts from, as `_build_offsets` set them.
        self._restore_from: dict[TP, int | None] = {}

    async def _build_highwaters(
        self, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        if self.app.in_transaction:  # Faust's consumer would answer the last stable offset
            ends = await self.high_watermarks(tps)
        else:  # Faust's consumer reads uncommitted: it asks the broker for the end offsets
            ends = await consumer.highwaters(*tps)
        last: dict[TP, int] = {}  # Faust counts the last offset, not the next
        for tp in tps:
            end = ends.get(tp)
            if end is None:
                raise RestoreEndUnknown(f"no end offset from the broker for {tp}")
            last[tp] = end - 1
        self.log.info(
            "Highwater for %s changelog partitions:\n%s",
            title,
            self._highwater_logtable(last, title=title),
        )
        if destination is self.active_highwaters:
            self.changelog_ends = dict(last)
        destination.clear()
        destination.update(last)

    async def high_watermarks(self, tps: Iterable[TP]) -> Mapping[TP, int | None]:
        """The broker's high watermark of each changelog partition (read_uncommitted: an open
        transaction's records count; the read_committed restore waits until it ends)."""
        if self._ends_client is None:
            client = AIOKafkaConsumer(
                **kafka_client_kwargs(self.settings),
                isolation_level="read_uncommitted",
                enable_auto_commit=False,
                client_id=f"{self.settings.app_id}-restore-ends",
            )
            await client.start()
            self._ends_client = client
        found: Mapping[TP, int | None] = await self._ends_client.end_offsets(list(tps))
        return found

    async def on_stop(self) -> None:
        """Close the end-offsets client too."""
        client, self._ends_client = self._ends_client, None
        if client is not None:
            await client.stop()
        await super().on_stop()

    async def _build_offsets(
        self, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        if destination is self.active_offsets:
            # From what the store persisted, as `add_active` read it: Faust's check for aborted
            # transactions runs beside recovery and may have moved an offset to the highwater
            # while the consumer's position was still the one of an earlier assignment (it
            # leaves an offset of None alone; the memory store persists none).
            for tp in tps:
                persisted = self.tp_to_table[tp].persisted_offset(tp)
                if persisted is not None:
                    destination[tp] = persisted
            self.discard_ahead(tps)
        await super()._build_offsets(consumer, tps, destination, title)
        if destination is self.active_offsets:
            self._restore_from = {tp: destination[tp] for tp in tps}

    async def _seek_offsets(
        self, consumer: ConsumerT, tps: set[TP], offsets: Counter[TP], title: str
    ) -> None:
        active = offsets is self.active_offsets
        if active:  # undo any move made from the positions of before the seek, seek, and again
            self._put_back(offsets)
        await super()._seek_offsets(consumer, tps, offsets, title)
        if active:  # the positions are the restore's now: the check cannot misfire any more
            self._put_back(offsets)

    def _put_back(self, offsets: Counter[TP]) -> None:
        for tp, offset in self._restore_from.items():  # not Counter.update: that adds
            offsets[tp] = offset  # type: ignore[assignment]  # None, as Faust's own

    def discard_ahead(self, tps: Iterable[TP]) -> None:
        """Wipe the RocksDB partitions of `tps` persisted past their changelog's last offset as
        the broker reported it (`changelog_ends`); a partition without a report is kept.

        Their offsets become -1 (nothing applied): recovery reads their whole changelog.
        """
        ahead: defaultdict[Collection, list[str]] = defaultdict(list)
        for tp in sorted(tps):
            table = cast(Collection, self.tp_to_table[tp])
            offset, last = self.active_offsets.get(tp), self.changelog_ends.get(tp)
            store = table.data  # of Faust's stores, only RocksDB persists offsets
            if (
                offset is None
                or last is None
                or offset <= last
                or not isinstance(store, RocksDBStore)
            ):
                continue
            wipe_partition(store, tp.partition)
            self.active_offsets[tp] = -1
            ahead[table].append(
                f"partition {tp.partition} (local offset {offset}, changelog's last {last})"
            )
        for table, partitions in ahead.items():
            log.warning(
                "table %s: local state is ahead of changelog %s in %s; discarded it, restoring "
                "from the changelog",
                table.name,
                table.changelog_topic.get_topic_name(),
                ", ".join(partitions),
            )


def wipe_partition(store: RocksDBStore, partition: int) -> None:
    """Delete every key of one partition's database, Faust's persisted offset among them."""
    database = store._db_for_partition(partition)
    cursor = database.iter()
    cursor.seek_to_last()
    if cursor.valid():
        last = cursor.key()
        batch = WriteBatch(raw_mode=True)  # one write: all keys or none
        batch.delete_range(b"", last)
        batch.delete(last)
        database.write(batch)


class ClusterCheck(Service):
    """At start, discards all local table state when the broker is another Kafka cluster."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        super().__init__()
        self.app = app
        self.settings = settings

    async def on_start(self) -> None:
        # Only a worker runs tables: other modes (e.g. `faust send`) leave the state alone.
        if not (self.app.producer_only or self.app.client_only):
            forget_other_cluster(self.app, await cluster_id(self.settings))


async def cluster_id(settings: Settings) -> str | None:
    """The id of the Kafka cluster at the bootstrap servers (None from a broker too old to say)."""
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        found: str | None = (await admin.describe_cluster()).get("cluster_id")
    finally:
        await admin.close()
    return found


def forget_other_cluster(app: faust.App, cluster: str | None) -> bool:
    """Discard all local table state built from another cluster than `cluster`; True if it was.

    The cluster is remembered in the app dir. With none remembered (a first start, or state
    older than this check) the state is kept: `HealingRecovery` still checks its offsets.
    """
    if cluster is None:
        return False
    marker = Path(app.conf.appdir) / CLUSTER_ID_FILE
    known = marker.read_text().strip() if marker.exists() else None
    if known == cluster:
        return False
    if known is not None:
        for table in app.tables.values():
            table.reset_state()
        app.conf.tabledir.mkdir(parents=True, exist_ok=True)  # reset_state removed it
        log.warning(
            "Kafka cluster %s is not %s, which the local tables were built from (the broker "
            "was wiped or replaced): discarded all local table state in %s, restoring it from "
            "the changelogs",
            cluster,
            known,
            app.conf.tabledir,
        )
    staged = marker.with_suffix(".tmp")
    staged.write_text(cluster + "\n")
    staged.replace(marker)
    return known is not None
