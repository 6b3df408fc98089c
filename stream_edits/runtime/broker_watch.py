"""The worker's one broker watch: every few seconds a round trip to the broker says whether it
answers (readiness, `/health/`), ends the quiet outage log (outage_log.py) and measures how far
this worker is behind (lag).

Lag is read from the broker, never inferred from what the worker saw: per assigned partition of
the consumed topics, records = the partition's end offset minus the position, and seconds = the
age of the record at the position (the oldest one not yet processed, fetched by a consumer of
its own, outside the group, that never commits). The position is the group's committed offset
or, when the worker has processed further (commits follow every few seconds), the offset up to
which its decisions and state are delivered. A partition with nothing to process has lag 0 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.log_safety import configure_logging
from stream_edits.runtime.outage_log import Outage, OutageFilter
from stream_edits.runtime.telemetry import PartitionLag, Telemetry
from stream_edits.settings import Settings

log = logging.getLogger(__name__)

PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 4.0  # a probe that takes longer counts as the broker not answering
FETCH_BYTES = 64 * 1024  # enough for one record's timestamp (the broker returns at least one)


class BrokerWatch:
    """Reachability, the outage log and lag, refreshed by `run` (the worker's task)."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        assigned: Callable[[], Collection[TopicPartition]],
        processed: Callable[[], Mapping[TopicPartition, int]] = dict,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`assigned` gives the consumed partitions this worker holds right now, `processed`
        the offsets it has delivered everything before (not yet committed, perhaps)."""
        self.settings = settings
        self.telemetry = telemetry
        self.assigned = assigned
        self.processed = processed
        self.clock = clock
        self.reachable = False
        self.probes = 0  # probes finished, either way (a view can wait for the first)
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._ages: dict[TopicPartition, float] = {}
        self.outage_filter = OutageFilter(Outage(settings.bootstrap_servers))

    async def run(self) -> None:
        """Probe forever, every PROBE_EVERY_S. The logging set-up (with the outage filter on the
        root handlers) is made again before each probe: Faust's worker sets up logging after the
        app's tasks are declared, and may replace the handlers."""
        try:
            while True:
                configure_logging(filters=[self.outage_filter])
                await self.probe()
                await asyncio.sleep(PROBE_EVERY_S)
        finally:
            await self.close()

    async def probe(self) -> None:
        """One probe: reachability, then lag. Failures mark the broker unreachable."""
        try:
            await asyncio.wait_for(self._probe(), PROBE_TIMEOUT_S)
            reachable = True
        except Exception as error:  # noqa: BLE001 - any failure means "did not answer"
            # The outage itself is logged once by outage_log; the probe stays quiet.
            log.debug("broker probe failed: %s", type(error).__name__)
            reachable = False
            await self.close()  # reconnect from the bootstrap servers next time
        self.reachable = reachable
        self.probes += 1
        self.telemetry.broker_reachable.set(1 if reachable else 0)
        if reachable:
            self.outage_filter.broker_answered(self.clock())

    async def _probe(self) -> None:
        admin, reader = await self._clients()
        # A request the broker must answer, and a small one: the group's committed offsets.
        # (aiokafka's describe_cluster asks for every topic's metadata: thousands of partitions
        # decoded in Python every probe on a cluster shared with other applications.)
        committed = await admin.list_consumer_group_offsets(self.settings.app_id)
        # aiokafka wants its own TopicPartition (a Faust TP is another named tuple).
        tps = sorted(TopicPartition(tp.topic, tp.partition) for tp in self.assigned())
        if not tps:
            self.telemetry.lags([])
            return
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        positions = {}
        processed = {TopicPartition(t.topic, t.partition): o for t, o in self.processed().items()}
        for tp in tps:
            offset = committed.get(tp)
            start = starts.get(tp, 0)
            known = offset is not None and offset.offset >= 0
            position = max(offset.offset, start) if known and offset else start
            positions[tp] = max(position, processed.get(tp, position))
        behind = {tp: positions[tp] for tp in tps if ends.get(tp, 0) > positions[tp]}
        ages = await self._ages_at(reader, behind) if behind else {}
        self.telemetry.lags(
            [
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    max(0, ends.get(tp, 0) - positions[tp]),
                    round(ages.get(tp, 0.0), 3),
                )
                for tp in tps
            ]
        )

    async def _ages_at(
        self, reader: AIOKafkaConsumer, positions: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, float]:
        """The age in seconds of the record at each position (the last known age when the
        fetch brings none in time)."""
        reader.assign(list(positions))
        for tp, offset in positions.items():
            reader.seek(tp, offset)
        now = self.clock()
        fetched = await reader.getmany(*positions, timeout_ms=1000)
        reader.pause(*positions)  # no prefetching between probes
        ages = {}
        for tp, offset in positions.items():
            first = next((r for r in fetched.get(tp, []) if r.offset >= offset), None)
            if first is not None:
                self._ages[tp] = max(0.0, now - first.timestamp / 1000)
            ages[tp] = self._ages.get(tp, 0.0)
        return ages

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._reader is None:
            options = kafka_client_kwargs(self.settings)
            admin = AIOKafkaAdminClient(**options, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000))
            reader = AIOKafkaConsumer(
                **options,
                group_id=None,
                enable_auto_commit=False,
                max_partition_fetch_bytes=FETCH_BYTES,
                fetch_max_bytes=FETCH_BYTES,
                request_timeout_ms=int(PROBE_TIMEOUT_S * 1000) + 1000,
            )
            self._admin, self._reader = admin, reader
            await admin.start()
            await reader.start()
        return self._admin, self._reader

    async def close(self) -> None:
        """Close the probe's clients (they are made again at the next probe)."""
        admin, reader, self._admin, self._reader = self._admin, self._reader, None, None
        try:
            if admin is not None:
                await admin.close()
            if reader is not None:
                await reader.stop()
        except Exception:  # noqa: BLE001 - closing a broken client may fail too
            log.debug("closing a probe client failed", exc_info=True)
