"""Local table state that disagrees with the broker heals itself.

After `kafka start --fresh`, a topic recreated or a cluster restored, the RocksDB partitions in
the data dir can be ahead of their changelogs; Faust's recovery then raises ConsistencyError at
every start. Here, as Kafka Streams does with a corrupted task, such state is discarded and
restored from the changelog, with one warning:

- another Kafka cluster (its id differs from the one remembered in the app dir): every table's
  local state is discarded before anything opens it. This also catches a new cluster whose
  changelog has already grown past the old offsets.
- a partition whose persisted changelog offset is past the changelog's last offset: that
  partition's state is wiped when recovery reads the offsets, and its whole changelog is read.

Every reach into Faust and mode internals for this is here, each pinned by
tests/unit/stream/test_state_healing.py:

- `TableManager._recovery` is set to a `HealingRecovery`: the manager's `recovery` property
  builds a plain `Recovery`, and no setting names another class.
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
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import faust
from aiokafka.admin import AIOKafkaAdminClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.types.transports import ConsumerT
from mode import Service
from rocksdict import WriteBatch

from stream_edits.settings import Settings
from stream_edits.topics import kafka_client_kwargs

log = logging.getLogger(__name__)

# In the app dir (next to the tables dir): the id of the cluster the tables were built from.
CLUSTER_ID_FILE = "kafka-cluster-id"


def install_state_healing(app: faust.App, settings: Settings) -> None:
    """Make `app`'s worker discard local table state that the broker's changelogs disagree with.

    Call it before the worker starts, before any other dependency is added to the app.
    """
    tables = cast(TableManager, app.tables)
    # No `loop=`: like App.tables, the service binds the running loop when it starts.
    tables._recovery = HealingRecovery(app, tables, beacon=tables.beacon)
    app.add_dependency(ClusterCheck(app, settings))


class HealingRecovery(Recovery):
    """Faust's table recovery, discarding an active partition's state ahead of its changelog."""

    async def _build_offsets(
        self, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        if destination is self.active_offsets:
            self.discard_ahead(tps)
        await super()._build_offsets(consumer, tps, destination, title)

    def discard_ahead(self, tps: Iterable[TP]) -> None:
        """Wipe the RocksDB partitions of `tps` persisted past their changelog's last offset.

        Their offsets become -1 (nothing applied): recovery reads their whole changelog.
        """
        ahead: defaultdict[Collection, list[str]] = defaultdict(list)
        for tp in sorted(tps):
            table = cast(Collection, self.tp_to_table[tp])
            offset, last = self.active_offsets.get(tp), self.active_highwaters.get(tp)
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
