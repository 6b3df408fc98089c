"""Checks the worker runs against the broker before it consumes, as Kafka Streams checks
co-partitioning: every topic a member's state depends on has the partition count its tables
expect, and every topic can take what the worker writes to it.

A member's lines, state and decisions share a partition number across `claim-lines`, the
repartition topic, the table's changelog and `claim-edits`; a topic with another count would
put a member's state on one partition and its lines on another. The dead-letter and repartition
topics carry input records whole plus headers, so they must take more than `claim-lines` does.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from stream_edits.kafka import errors
from stream_edits.kafka.admin import partition_counts, wait_visible
from stream_edits.kafka.confluent import admin_client
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import HEADER_ROOM_BYTES, Settings

MAX_MESSAGE_BYTES = "max.message.bytes"


class PreflightError(Exception):
    """The topics disagree with what the worker needs; the message says which and how to fix."""


def changelog_topic(settings: Settings) -> str:
    """The member table's changelog topic (Faust names it `<app id>-<table>-changelog`)."""
    return f"{settings.app_id}-members-changelog"


async def check_topics(settings: Settings) -> None:
    """Raise PreflightError unless the topics fit; create the repartition topic if missing."""
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        await _check_access(settings)
        counts = await partition_counts(admin)
        _check_counts(settings, counts)
        await _create_internal(admin, settings, counts)
        # Topics just created (here or by anyone) may take a moment to show in metadata.
        internal = [settings.repartition_topic, changelog_topic(settings)]
        _check_counts(settings, await wait_visible(admin, internal))
        limits = await _max_message_bytes(
            admin,
            [
                settings.input_topic,
                settings.output_topic,
                settings.dlq_topic,
                settings.repartition_topic,
                changelog_topic(settings),
            ],
        )
        _check_sizes(settings, limits)
    finally:
        await admin.close()


async def _check_access(settings: Settings) -> None:
    """PreflightError naming a topic or the group and the operation the worker's principal may
    not do (a broker without an authorizer allows everything)."""
    from stream_edits.kafka.acls import worker_topic_needs

    admin = admin_client(settings)
    try:
        await errors.check_topics(admin, settings, worker_topic_needs(settings))
        await errors.check_group(admin, settings, settings.app_id, ["Read"])
    except errors.AccessDenied as error:
        raise PreflightError(
            f"{error}; the worker's ACLs: `stream-edits kafka acls --role worker --principal "
            f"{errors.principal(settings)}`"
        ) from error


def _check_counts(settings: Settings, counts: dict[str, int]) -> None:
    required = [settings.input_topic, settings.output_topic, settings.dlq_topic]
    missing = [name for name in required if name not in counts]
    if missing:
        raise PreflightError(
            f"topic {', '.join(missing)} does not exist: run `stream-edits topics create`"
        )
    internal = [settings.repartition_topic, changelog_topic(settings)]
    wrong = [
        f"{name} has {counts[name]}"
        for name in [*required, *internal]
        if name in counts and counts[name] != settings.partitions
    ]
    if wrong:
        raise PreflightError(
            f"topics not co-partitioned: {'; '.join(wrong)} partitions, the tables expect "
            f"{settings.partitions} (STREAM_EDITS_PARTITIONS); a member's lines and state must "
            "share a partition number"
        )


async def _create_internal(
    admin: AIOKafkaAdminClient, settings: Settings, counts: dict[str, int]
) -> None:
    """Create the repartition and changelog topics when missing, sized for what they carry
    (Faust would create them with the broker's default message size)."""
    configs = {
        settings.repartition_topic: {MAX_MESSAGE_BYTES: str(settings.dlq_max_message_bytes)},
        changelog_topic(settings): {
            "cleanup.policy": "compact",
            MAX_MESSAGE_BYTES: str(settings.max_message_bytes),
        },
    }
    missing = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            topic_configs=config,
        )
        for name, config in configs.items()
        if name not in counts
    ]
    if not missing:
        return
    response = await admin.create_topics(missing)
    for entry in response.topic_errors:
        if entry[1] not in (0, TopicAlreadyExistsError.errno):
            raise PreflightError(f"cannot create {entry[0]}: {for_code(entry[1]).message}")


async def _max_message_bytes(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, {MAX_MESSAGE_BYTES: None}) for name in topics
    ]
    limits: dict[str, int] = {}
    for response in await admin.describe_configs(resources):
        for _, _, _, name, entries in response.resources:
            for entry in entries:
                if entry[0] == MAX_MESSAGE_BYTES:
                    limits[name] = int(entry[1])
    return limits


def _check_sizes(settings: Settings, limits: dict[str, int]) -> None:
    accepted = limits.get(settings.input_topic, 0)
    if accepted > settings.max_message_bytes:
        raise PreflightError(
            f"{settings.input_topic} accepts records up to {accepted} bytes, more than "
            f"STREAM_EDITS_MAX_MESSAGE_BYTES={settings.max_message_bytes}: raise the setting to "
            f"at least {accepted}, or lower the topic's {MAX_MESSAGE_BYTES}"
        )
    batch = settings.producer_batch_bytes
    for name in (settings.output_topic, changelog_topic(settings)):
        if limits.get(name, 0) < max(batch, settings.max_message_bytes):
            raise PreflightError(
                f"{name} takes records up to {limits.get(name)} bytes, less than "
                f"STREAM_EDITS_MAX_MESSAGE_BYTES={settings.max_message_bytes}: set its "
                f"{MAX_MESSAGE_BYTES} to {settings.max_message_bytes}"
            )
    needed = accepted + HEADER_ROOM_BYTES
    for name in (settings.dlq_topic, settings.repartition_topic):
        if limits.get(name, 0) < needed:
            raise PreflightError(
                f"{name} takes records up to {limits.get(name)} bytes, but a dead letter or "
                f"forward of a {settings.input_topic} record needs {needed}: set its "
                f"{MAX_MESSAGE_BYTES} to {settings.dlq_max_message_bytes} (kafka-configs.sh "
                f"--alter --entity-type topics --entity-name {name} --add-config "
                f"{MAX_MESSAGE_BYTES}={settings.dlq_max_message_bytes})"
            )
