"""The least ACLs each role needs, as Kafka Streams documents its own, and setting them up.

One definition serves three purposes: `stream-edits kafka acls --role ROLE --principal P` creates
these bindings, the worker's start-up check asks the broker for exactly these operations, and
docs/security.md lists them (a test checks its table against this module).

Implied operations (Kafka's rules): Read, Write, Delete and Alter imply Describe; AlterConfigs
implies DescribeConfigs. Create implies nothing, so whoever creates a topic and then waits to see
it needs Describe too (Write or Read give it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AclBinding, AclPermissionType, ResourcePatternType, ResourceType

from stream_edits.kafka import confluent
from stream_edits.refusal import Refused
from stream_edits.settings import Settings

Role = Literal["worker", "producer", "reader", "replay", "admin"]
ROLES: tuple[Role, ...] = ("worker", "producer", "reader", "replay", "admin")
REQUEST_TIMEOUT_S = confluent.REQUEST_TIMEOUT_S
RESOURCE_TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,  # Kafka's CLUSTER resource (librdkafka names it BROKER)
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}
PATTERN_TYPES = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}


class AclError(Refused):
    """Bindings could not be made; the message says why."""


@dataclass(frozen=True, order=True)
class Binding:
    """One ALLOW binding: `operation` on a resource (a name, or a name prefix), any host."""

    resource: Literal["topic", "group", "transactional-id", "cluster"]
    name: str
    pattern: Literal["literal", "prefixed"]
    operation: str
    why: str = ""

    def matches(self, resource: str, name: str) -> bool:
        """Whether this binding's pattern covers resource `name`."""
        if resource != self.resource:
            return False
        return name == self.name if self.pattern == "literal" else name.startswith(self.name)

    def acl(self, principal: str) -> AclBinding:
        """This binding for `principal`, as the AdminClient creates it."""
        return AclBinding(
            RESOURCE_TYPES[self.resource],
            self.name,
            PATTERN_TYPES[self.pattern],
            principal,
            "*",
            confluent.OPERATIONS[self.operation],
            AclPermissionType.ALLOW,
        )


def _each(
    resource: Literal["topic", "group", "transactional-id", "cluster"],
    name: str,
    pattern: Literal["literal", "prefixed"],
    operations: Iterable[str],
    why: str,
) -> list[Binding]:
    return [Binding(resource, name, pattern, op, why) for op in operations]


def role_bindings(
    role: Role,
    settings: Settings,
    *,
    group: str | None = None,
    output_topic: str | None = None,
    prefixed: bool = False,
) -> list[Binding]:
    """The bindings `role` needs with these settings' topic names and app id.

    worker: `group` unused (its group is the app id); exactly_once adds its transactional ids.
    reader: `group` adds a consumer group of its own (`tail` needs none).
    replay: `output_topic` is required: that topic and `<output>-dlq` (with `prefixed`, every
    topic whose name starts with it).
    """
    s = settings
    internal = f"{s.app_id}-"  # the repartition topic, the changelog, Faust's leader topic
    bindings: list[Binding] = []
    if role == "worker":
        bindings += _each(
            "topic",
            s.input_topic,
            "literal",
            ["Read", "DescribeConfigs"],
            "its input; the start-up check reads max.message.bytes",
        )
        for topic, what in ((s.output_topic, "decisions"), (s.dlq_topic, "dead letters")):
            bindings += _each("topic", topic, "literal", ["Write", "DescribeConfigs"], what)
        bindings += _each(
            "topic",
            internal,
            "prefixed",
            ["Create", "Read", "Write", "DescribeConfigs"],
            "internal topics: repartition, changelog, Faust's leader topic",
        )
        bindings += _each(
            "group", s.app_id, "literal", ["Read"], "its consumer group (commits, lag)"
        )
        if s.processing_guarantee == "exactly_once":
            bindings += _each(
                "transactional-id",
                internal,
                "prefixed",
                ["Write"],
                "exactly_once: Faust's transactional ids, app id - group - partition",
            )
    elif role == "producer":
        bindings += _each(
            "topic",
            s.input_topic,
            "literal",
            ["Write"],
            "claim lines in (idempotent: Write on the topic is enough since Kafka 3.0)",
        )
    elif role == "reader":
        bindings += _each(
            "topic", s.output_topic, "literal", ["Read"], "decisions (tail, reconcile: no group)"
        )
        if group is not None:
            bindings += _each(
                "group", group, "literal", ["Read"], "--group: a consumer of its own that commits"
            )
    elif role == "replay":
        if output_topic is None:
            raise AclError("--role replay needs --output-topic (the replay's own output)")
        bindings += _each(
            "topic", s.input_topic, "literal", ["Read"], "history (no group: commits nothing)"
        )
        outputs = [output_topic] if prefixed else [output_topic, f"{output_topic}-dlq"]
        for topic in outputs:
            bindings += _each(
                "topic",
                topic,
                "prefixed" if prefixed else "literal",
                ["Create", "Write"],
                "its output and dead letters",
            )
    elif role == "admin":
        for topic in (s.input_topic, s.output_topic, s.dlq_topic):
            bindings += _each(
                "topic",
                topic,
                "literal",
                ["Create", "Describe"],
                "topics create (Create does not imply Describe; it waits to see them)",
            )
    else:
        raise AclError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return bindings


def worker_topic_needs(settings: Settings) -> dict[str, list[str]]:
    """The operations the worker needs on each topic it uses, from its role's bindings: what its
    start-up check asks the broker for."""
    from stream_edits.kafka.preflight import changelog_topic  # preflight imports this module

    s = settings
    topics = [
        s.input_topic,
        s.output_topic,
        s.dlq_topic,
        s.repartition_topic,
        changelog_topic(s),
    ]
    bindings = role_bindings("worker", s)
    return {topic: [b.operation for b in bindings if b.matches("topic", topic)] for topic in topics}


def render(bindings: Iterable[Binding], principal: str) -> list[str]:
    """One line per binding, as `kafka-acls --list` shows them, grouped by resource."""
    lines = []
    for b in bindings:
        resource = f"{b.resource}:{b.pattern}:{b.name}"
        lines.append(f"{principal:<24} ALLOW {b.operation:<16} {resource:<48} {b.why}".rstrip())
    return lines


async def create(admin_settings: Settings, principal: str, bindings: list[Binding]) -> None:
    """Create `bindings` for `principal` in one request (existing ones stay as they are)."""
    admin = confluent.admin_client(admin_settings)
    acls = [b.acl(principal) for b in bindings]
    futures = admin.create_acls(acls, request_timeout=REQUEST_TIMEOUT_S)
    failures = []
    for binding, acl in zip(bindings, acls, strict=True):
        try:
            await confluent.resolved(futures[acl])
        except KafkaException as error:
            if confluent.error_code(error) in confluent.UNREACHABLE:
                raise confluent.as_aiokafka_error(error) from error
            reason = confluent.reason(error)
            failures.append(f"{binding.operation} on {binding.resource} {binding.name}: {reason}")
    if failures:
        raise AclError("the broker refused: " + "; ".join(failures))


def check_principal(principal: str) -> str:
    """`principal` when it reads TYPE:NAME (User:alice), else AclError."""
    kind, _, name = principal.partition(":")
    if not kind or not name:
        raise AclError(f"--principal {principal!r} is not TYPE:NAME, e.g. User:alice")
    return principal


@dataclass(frozen=True)
class AclRequest:
    """What `stream-edits kafka acls` is asked: a role's bindings for a principal."""

    role: Role
    principal: str
    group: str | None = None
    output_topic: str | None = None
    prefixed: bool = False
    dry_run: bool = False


def acls_command(settings: Settings, request: AclRequest, admin: Callable[[], Settings]) -> int:
    """`stream-edits kafka acls`: create (or with `dry_run` only print) a role's bindings for a
    principal, topic names and app id from `settings`, connected as `admin()` (asked only when
    setting them); exit 0. AclError or Kafka's errors as they are (the command line words
    them)."""
    from stream_edits.kafka.errors import quiet_bootstrap_errors

    principal = check_principal(request.principal)
    bindings = role_bindings(
        request.role,
        settings,
        group=request.group,
        output_topic=request.output_topic,
        prefixed=request.prefixed,
    )
    if not request.dry_run:
        connect_as = admin()
        with quiet_bootstrap_errors():
            asyncio.run(create(connect_as, principal, bindings))
    verb = "would set" if request.dry_run else "set"
    print(f"{verb} {len(bindings)} ACLs of role {request.role} for {principal}:")
    for line in render(bindings, principal):
        print("  " + line)
    return 0
