"""The Faust app: topics, tables, agents and web views, declared together so the flow reads top
to bottom. `create_app` builds it from one Settings object; `stream_edits.runtime.faust_app`
exposes it to
`faust -A stream_edits.runtime.faust_app worker`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust
from aiokafka.helpers import create_ssl_context
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from stream_edits.gc_pause import collect_on_schedule, freeze_long_lived, time_collections
from stream_edits.log_safety import configure_logging, exception_summary
from stream_edits.rules.loader import load_rules
from stream_edits.runtime.broker_watch import BrokerWatch
from stream_edits.runtime.inbox import Inbox
from stream_edits.runtime.processor import Processor, ProcessorConfig, Topics
from stream_edits.runtime.state.healing import install_state_healing
from stream_edits.runtime.state.tables import FaustMemberTable
from stream_edits.runtime.telemetry import Telemetry
from stream_edits.runtime.transport import BatchingConsumer, use_inbox
from stream_edits.runtime.web.dashboard import add_dashboard
from stream_edits.runtime.web.health import add_health
from stream_edits.runtime.web.lookups import add_lookups
from stream_edits.runtime.web.metrics import add_metrics
from stream_edits.runtime.web.stats import add_stats
from stream_edits.settings import Settings

log = logging.getLogger(__name__)

# Seconds between the worker's collections of cyclic garbage (gc_pause.collect_on_schedule):
# each walks every decoded member record the cache holds (docs/decisions/0018-member-cache.md).
GC_EVERY_S = 300.0


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for SASL and/or TLS, from settings."""
    context = (
        create_ssl_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.security_protocol in ("SSL", "SASL_SSL")
        else None
    )
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> faust.App:
    """Build the stream processor. Rules are loaded (and validated) here, before any consuming."""
    rules = load_rules(settings.rules_dir, settings.rules_cache_dir)
    configure_logging()  # from here on; the broker watch makes it again once the worker runs
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        table_standby_replicas=0,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=settings.producer_batch_bytes,
        producer_max_request_size=settings.producer_max_request_bytes,
        web_host=settings.web_host,
        web_port=settings.web_port,
        # Faust's own views: /table/ answers with a member's whole state (PHI) to anyone, and
        # /router/, /graph/ and the sensor stats are not for operators; the project serves its
        # own (stream_edits/runtime/web/).
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        autodiscover=False,
    )
    install_state_healing(app, settings)

    claim_lines = app.topic(settings.input_topic)
    # Lines not on their member's partition travel there through this internal topic (a
    # repartition, as Kafka Streams does for a re-keyed stream), their bytes unchanged.
    repartition = app.topic(
        settings.repartition_topic,
        partitions=settings.partitions,
        internal=True,
        config={"max.message.bytes": str(settings.dlq_max_message_bytes)},
    )
    # One record per member (its claim entries and patient-days, orjson bytes): a batch's
    # writes for a member are one changelog message, never half applied.
    members = app.Table("members", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    telemetry = Telemetry(lambda: processor.stats, rules.version)
    processor = Processor(
        rules=rules,
        members=FaustMemberTable(members),
        producer=app.maybe_start_producer,
        config=ProcessorConfig(
            topics=Topics(
                repartition=settings.repartition_topic,
                output=settings.output_topic,
                dlq=settings.dlq_topic,
                app_id=settings.app_id,
            ),
            partitions=settings.partitions,
            horizon_days=settings.horizon_days,
            member_state_max_bytes=settings.member_state_max_bytes,
            member_cache=settings.member_cache,
            # A record replayed after its state was stored may never have had its decisions
            # delivered (they go out after the state: checkpoint.py), or, under exactly_once,
            # had them in a transaction that aborted: it publishes them again.
            republish_replays=True,
            # ... and the local store holds only what a transaction committed: after a kill -9
            # the records of the aborted one are decided again as new, and published once.
            store_on_commit=settings.processing_guarantee == "exactly_once",
        ),
        observer=telemetry,
    )

    # Both topics' records reach the decide task a fetch at a time, not through Faust's
    # per-message conductor (see transport.py). One task decides, one batch at a time; the
    # checkpoints deliver each batch in order behind it, and a batch's offsets become committable
    # only after its state and outputs are delivered (checkpoint.py; no concurrency, faust #606).
    inbox = Inbox(
        {claim_lines.get_topic_name(), repartition.get_topic_name()}, 4 * settings.batch_max
    )
    use_inbox(app, inbox, processor.settle, telemetry.stage, processor.committed)
    app.topics.add(
        claim_lines
    )  # subscribe: the conductor never sees their records, the consumer does
    app.topics.add(repartition)

    @app.task  # type: ignore[untyped-decorator]
    async def decide_lines() -> None:
        consumer = cast(BatchingConsumer, app.consumer)

        def delivery_failed(error: Exception) -> None:  # even while no batch is being taken
            log.error("delivery failed: %s", exception_summary(error))
            asyncio.ensure_future(app.crash(error))

        processor.checkpoints.report_to(consumer.processed, delivery_failed)
        try:
            while True:
                if not len(inbox):  # nothing waiting (a rebalance then settles what is in flight)
                    inbox.done()
                batch = await inbox.take(settings.batch_max)
                taken = time.time()
                telemetry.stage("inbox", taken - batch.queued_at)
                if batch.created_ms is not None:
                    telemetry.stage("fetch", max(0.0, batch.queued_at - batch.created_ms / 1000))
                async with consumer.batch_gate:  # not while a transaction commits
                    await processor.process_batch(batch.records, batch.next_offsets)
        except Exception as error:  # nothing committed past a failure: crash, restart, replay
            log.error("decide_lines failed: %s", exception_summary(error))
            inbox.done()
            await app.crash(error)

    @app.on_partitions_revoked.connect
    def forget_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.forget_assignment()

    @app.task  # type: ignore[untyped-decorator]
    async def keep_collections_short() -> None:
        # Started: Faust, the clients and the rules stay alive for good. Frozen, they are not
        # walked by every full collection (a 50-100 ms pause on a busy 2-core machine).
        freeze_long_lived()
        time_collections(lambda seconds: telemetry.stage("gc", seconds))
        await collect_on_schedule(GC_EVERY_S)

    # -- web views (stream_edits/runtime/web/) --
    def assigned() -> set[TP]:
        """The consumed partitions this worker holds."""
        try:
            return {tp for tp in app.consumer.assignment() if tp.topic in inbox.topics}
        except ConsumerNotStarted:
            return set()

    def processed() -> dict[TP, int]:
        """Offsets this worker has processed up to (delivered, perhaps not yet committed)."""
        try:
            return cast(BatchingConsumer, app.consumer).processed_offsets()
        except ConsumerNotStarted:
            return {}

    # Reachability for /health/, the outage log (a broker outage logs a few lines a minute, not
    # 75 a second) and lag: one watch, one task.
    watch = BrokerWatch(settings, telemetry, assigned, processed)

    @app.task  # type: ignore[untyped-decorator]
    async def watch_broker() -> None:
        telemetry.count_start(settings.data_dir / "worker-starts")
        await watch.run()

    add_metrics(app, telemetry)
    readiness = add_health(app, watch, assigned)
    add_stats(app, settings, rules.version, lambda: processor.stats, telemetry, readiness)
    add_dashboard(app)  # the operator page at /, polling /stats/
    add_lookups(app, settings, rules, members)  # PHI look-ups, guarded by STREAM_EDITS_WEB_TOKEN
    return app
