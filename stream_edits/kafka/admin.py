"""`stream-edits topics create`: create the contract's topics that are missing, leave the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from stream_edits.kafka.confluent import admin_client
from stream_edits.kafka.errors import check_topics, quiet_bootstrap_errors
from stream_edits.kafka.topics import TopicSpec, kafka_client_kwargs, topic_specs
from stream_edits.settings import Settings

VISIBLE_TIMEOUT_S = 15.0


class TopicsError(Exception):
    """A topic could not be created, or an existing one disagrees with the contract."""


class TopicMissingError(TopicsError):
    """A topic a command needs does not exist."""


async def partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partition count per existing topic."""
    # Ask for all topics: naming missing ones in a Metadata request would let a broker with
    # auto.create.topics.enable create them with its defaults (1 partition, delete policy).
    return {
        t["topic"]: len(t["partitions"])
        for t in await admin.describe_topics()
        if t["error_code"] == 0
    }


def _check_partitions(specs: Iterable[TopicSpec], found: dict[str, int]) -> None:
    wrong = [
        f"topic {s.name} has {found[s.name]} partitions, the contract says {s.partitions}"
        for s in specs
        if s.name in found and found[s.name] != s.partitions
    ]
    if wrong:
        # Keys are hashed over the partition count, so a different count breaks per-member
        # ordering and the worker's co-partitioned tables; fix the topic or the settings.
        raise TopicsError("; ".join(wrong))


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    """Create `specs`; the names actually created (another client may win a race)."""
    response = await admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                topic_configs=s.configs,
            )
            for s in specs
        ]
    )
    created, failures = [], []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            message = entry[2] if len(entry) > 2 and entry[2] else for_code(code).description
            failures.append(f"{name}: {for_code(code).message}: {message}")
    if failures:
        raise TopicsError("cannot create " + "; ".join(failures))
    return [s.name for s in specs if s.name in created]


async def wait_visible(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts once every named topic shows in metadata (TopicsError after 15 s)."""
    # The controller answers before every broker's metadata cache has the new topics.
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while True:
        found = await partition_counts(admin)
        if all(name in found for name in names):
            return found
        if time.monotonic() > deadline:
            missing = ", ".join(n for n in names if n not in found)
            raise TopicsError(f"topics not visible after {VISIBLE_TIMEOUT_S:.0f} s: {missing}")
        await asyncio.sleep(0.1)


async def create_topics(settings: Settings) -> list[str]:
    """Create the missing contract topics; return the names created (the others existed).

    Existing topics are left as they are. Raises TopicsError when one has a partition count other
    than the contract's, before creating anything.
    """
    specs = topic_specs(settings)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        found = await partition_counts(admin)
        _check_partitions(specs, found)
        missing = [s for s in specs if s.name not in found]
        created = await _create(admin, missing) if missing else []
        # Topics another client created meanwhile are checked too.
        _check_partitions(specs, await wait_visible(admin, [s.name for s in specs]))
        return created
    finally:
        await admin.close()


async def require_topic(settings: Settings, topic: str, operation: str = "Describe") -> int:
    """The partition count of `topic`; TopicMissingError when it does not exist, AccessDenied
    (stream_edits.kafka.errors) when the principal may not do `operation` with it."""
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        # First: a topic the principal may not Describe is missing from the list below.
        await check_topics(admin_client(settings), settings, {topic: [operation]})
        count = (await partition_counts(admin)).get(topic)
    finally:
        await admin.close()
    if count is None:
        raise TopicMissingError(f"topic {topic} does not exist: run `stream-edits topics create`")
    return count


def create_topics_command(settings: Settings) -> int:
    """Run `topics create`: one line per topic (created / exists) on stdout; exit 0. TopicsError
    or Kafka's error as they are (the command line words them)."""
    with quiet_bootstrap_errors():
        created = asyncio.run(create_topics(settings))
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name:<20} {state:<8} {spec.partitions} partitions, {spec.cleanup_policy}")
    return 0
