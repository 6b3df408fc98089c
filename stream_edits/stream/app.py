"""The Faust app: topics, tables, agents and web views, declared together so the flow reads top
to bottom. `create_app` builds it from one Settings object; `stream_edits.app` exposes it to
`faust -A stream_edits.app worker`.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faust
from aiokafka.helpers import create_ssl_context
from faust.types import StreamT
from faust.web import Request, Response, View

from stream_edits.intake import decode_claim_line
from stream_edits.models import Rejection
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings
from stream_edits.stream.cache import FaustMemberTable
from stream_edits.stream.inbox import Inbox
from stream_edits.stream.processor import Processor
from stream_edits.stream.transport import BatchingConsumer, use_inbox

log = logging.getLogger(__name__)

# Batches smaller than this are finished (state delivered, offsets committable) before the next
# is taken; larger ones, a backlog, overlap their deliveries with the next batch's processing.
# Overlap pays when processing a batch takes long against a delivery round trip; small batches
# gain nothing from it (and measured a worse p99 at 5,000 lines/s).
PIPELINE_MIN_RECORDS = 500

# Loggers that format every message they handle at DEBUG, values included (PHI, and ~10% of the
# time per event): they are held at WARNING whatever the worker's own level.
CHATTY_LOGGERS = ("aiokafka", "faust.topics", "faust.transport", "faust.tables", "mode")


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for SASL and/or TLS, from settings."""
    context = (
        create_ssl_context(cafile=str(settings.ssl_cafile))
        if settings.security_protocol in ("SSL", "SASL_SSL")
        else None
    )
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> faust.App:
    """Build the stream processor. Rules are loaded (and validated) here, before any consuming."""
    rules = load_rules(settings.rules_dir)
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
        producer_max_batch_size=settings.producer_max_batch_bytes,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )

    claim_lines = app.topic(settings.input_topic)
    claim_edits = app.topic(settings.output_topic)
    dead_letters = app.topic(settings.dlq_topic)
    # One record per member (its claim entries and patient-days, orjson bytes): a batch's
    # writes for a member are one changelog message, never half applied.
    members = app.Table("members", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    processor = Processor(
        rules,
        FaustMemberTable(members),
        claim_edits,
        dead_letters,
        app.maybe_start_producer,
        settings.partitions,
        settings.horizon_days,
        settings.member_cache,
    )

    source = claim_lines
    if not settings.input_keyed_by_member:
        # Producers that do not key by member_id: re-key every line by member_id through an
        # internal topic (a group_by), so each member's state lives in one partition.
        source = app.topic(
            f"{settings.app_id}-claim-lines-by-member",
            partitions=settings.partitions,
            internal=True,
        )

        @app.agent(claim_lines, name="group_by_member")
        async def group_by_member(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                parsed = decode_claim_line(event.value)
                if isinstance(parsed, Rejection):
                    await processor.dead_letter_now(event.message, parsed)
                else:
                    await source.send(key=parsed.member_id.encode(), value=event.value)

    # The input topic's records reach the decide task a fetch at a time, not through Faust's
    # per-message conductor (see transport.py). One task, one batch at a time: a batch's offsets
    # become committable only after its decisions and state are delivered (no concurrency,
    # faust #606).
    inbox = Inbox({source.get_topic_name()}, capacity=4 * settings.batch_max)
    use_inbox(app, inbox)
    app.topics.add(source)  # subscribe: the conductor never sees its records, the consumer does

    @app.task  # type: ignore[untyped-decorator]
    async def decide_lines() -> None:
        consumer = cast(BatchingConsumer, app.consumer)
        try:
            while True:
                if not len(inbox):  # nothing waiting: finish the batches in flight, then idle
                    consumer.processed(await processor.settle())
                    inbox.done()
                batch = await inbox.take(settings.batch_max)
                consumer.processed(await processor.process_batch(batch.records, batch.next_offsets))
                if len(batch.records) < PIPELINE_MIN_RECORDS:  # not a backlog: finish it now
                    consumer.processed(await processor.settle())
        except Exception as error:  # nothing committed past a failure: crash, restart, replay
            log.exception("decide_lines failed")
            inbox.done()
            await app.crash(error)

    @app.on_partitions_revoked.connect
    def forget_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.forget_assignment()

    @app.task  # type: ignore[untyped-decorator]
    async def quiet_chatty_loggers() -> None:
        for name in CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))

    @app.page("/stats/")
    class StatsView(View):
        """Counters of the processor: counts and stream times only, no claim content."""

        async def get(self, request: Request) -> Response:
            return self.json(
                {
                    "app_id": settings.app_id,
                    "rules_version": rules.version,
                    "processing_guarantee": settings.processing_guarantee,
                    **processor.stats.as_dict(),
                }
            )

    @app.page("/health/")
    class HealthView(View):
        """Liveness: answers while the worker's event loop runs."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    return app
