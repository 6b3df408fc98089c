"""Why a client may not use the broker, in one line: a login refused, a listener that speaks
another protocol, an ACL missing.

aiokafka reports every failed bootstrap as `KafkaConnectionError: Unable to bootstrap from
[...]` and logs the cause (a refused SCRAM login, a certificate, a closed connection) on a line
of its own. `explain` turns an error into the sentence an operator needs; for a failed bootstrap
it opens one connection of its own, within a few seconds, to learn the cause (confluent-kafka's
refusals are read the same way). `check_topics` and `check_group` ask the broker, through
confluent-kafka's AdminClient, before a command starts, what the principal may do with the topics
and group it needs (Kafka's authorized operations, KIP-430), so a missing ACL is named, with the
operation, instead of surfacing later as a retry loop or a topic that "does not exist".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Collection, Iterator, Mapping

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest
from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from stream_edits.kafka import confluent
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings

PROBE_TIMEOUT_S = 5.0
COORDINATOR_WAIT_S = 10.0  # the first group of a new cluster waits for __consumer_offsets
COORDINATOR_PENDING = frozenset(
    {
        LibrdkafkaError.NOT_COORDINATOR,
        LibrdkafkaError.COORDINATOR_NOT_AVAILABLE,
        LibrdkafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
# aiokafka's bootstrap logs these (with the cause as an argument) before it raises.
BOOTSTRAP_LOGS = ('Unable connect to "%s:%s": %s', 'Unable to request metadata from "%s:%s": %s')
TLS = ("SSL", "SASL_SSL")


class AccessDenied(Exception):
    """The principal lacks an ACL the command needs; the message names it."""


def principal(settings: Settings) -> str:
    """The principal the broker sees for these settings (its default principal builder)."""
    if settings.security_protocol.startswith("SASL") and settings.sasl_username:
        return f"User:{settings.sasl_username}"
    return "User:ANONYMOUS"


def _listener(settings: Settings) -> str:
    return f"security_protocol={settings.security_protocol}"


# --- errors, explained ---------------------------------------------------------------------


def explain(error: BaseException, settings: Settings) -> str:
    """One line saying what went wrong and what to check; for a failed bootstrap it connects once
    more (at most PROBE_TIMEOUT_S) to find the cause. Call it outside a running event loop."""
    error = confluent.as_aiokafka_error(error)
    if isinstance(error, KafkaConnectionError) and "bootstrap" in str(error):
        cause = asyncio.run(probe(settings))
        if cause is not None:
            return explain_cause(cause, settings)
    return explain_cause(error, settings)


def explain_cause(error: BaseException, settings: Settings) -> str:
    """One line for a connection or authorization failure (no I/O); other errors as they are."""
    who = principal(settings)
    target = settings.bootstrap_servers
    if isinstance(error, SaslAuthenticationFailed):
        return (
            f"authentication failed: the broker at {target} refused the "
            f"{settings.sasl_mechanism} login of user {settings.sasl_username!r} (wrong name or "
            "password: check STREAM_EDITS_SASL_USERNAME and STREAM_EDITS_SASL_PASSWORD)"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return (
            f"the broker at {target} does not accept SASL mechanism {settings.sasl_mechanism} "
            "on this listener (STREAM_EDITS_SASL_MECHANISM)"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        cafile = settings.ssl_cafile or "unset: the system's CAs"
        return (
            f"the broker's TLS certificate at {target} is not trusted: "
            f"{error.verify_message} (STREAM_EDITS_SSL_CAFILE={cafile})"
        )
    if isinstance(error, ssl.SSLError | ConnectionResetError | asyncio.IncompleteReadError) and (
        settings.security_protocol in TLS
    ):
        return (
            f"the broker at {target} closed the connection during the TLS handshake: "
            f"is it a plaintext listener? ({_listener(settings)})"
        )
    if isinstance(error, ConnectionRefusedError):
        return f"nothing listens at {target} (connection refused): is the broker running?"
    if isinstance(error, TimeoutError):
        return f"no answer from {target} within {PROBE_TIMEOUT_S:.0f} s ({_listener(settings)})"
    closed = isinstance(error, KafkaConnectionError) and "closed" in str(error)
    if closed or isinstance(error, ConnectionResetError):
        if settings.security_protocol in TLS:
            return (
                f"the broker at {target} closed the connection after the TLS handshake: does "
                f"the listener want a SASL login? ({_listener(settings)})"
            )
        return (
            f"the broker at {target} closed the connection: is it a TLS listener? "
            f"({_listener(settings)})"
        )
    if isinstance(error, TopicAuthorizationFailedError):
        topics = _names(error) or "a topic"
        return f"not authorized: {who} may not use {topics} (TopicAuthorizationFailed)"
    if isinstance(error, GroupAuthorizationFailedError):
        group = _names(error) or "its group"
        return f"not authorized: {who} may not use {group} (GroupAuthorizationFailed)"
    if isinstance(error, TransactionalIdAuthorizationFailed):
        what = "its transactional id"
        return f"not authorized: {who} may not use {what} (TransactionalIdAuthorizationFailed)"
    if isinstance(error, ClusterAuthorizationFailedError):
        return f"not authorized: {who} may not do that on the cluster (ClusterAuthorizationFailed)"
    if isinstance(error, OSError):
        return f"cannot reach {target}: {error.strerror or error}"
    if isinstance(error, KafkaException):
        return confluent.reason(error)  # librdkafka's text, without the code's name
    if isinstance(error, KafkaConfigurationError) and error.args:
        return str(error.args[0])  # ours (a CA file that cannot be read), without the class name
    return str(error)


def _names(error: KafkaError) -> str:
    """What aiokafka put in an authorization error's arguments (topic or group names)."""
    names: list[str] = []
    for arg in error.args:
        if isinstance(arg, str):
            names.append(arg)
        elif isinstance(arg, Collection):
            names.extend(str(a) for a in arg)
    return ", ".join(names)


async def probe(settings: Settings) -> BaseException | None:
    """Connect to the first bootstrap server as the clients do and send one Metadata request;
    the error that stops it (None when it succeeds). At most PROBE_TIMEOUT_S."""
    kwargs = kafka_client_kwargs(settings)
    servers = kwargs.pop("bootstrap_servers")
    host, port, _ = collect_hosts(servers)[0]

    async def attempt() -> None:
        conn = await create_conn(
            host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **kwargs
        )
        try:
            await conn.send(MetadataRequest([]))
        finally:
            conn.close()

    try:
        await asyncio.wait_for(attempt(), PROBE_TIMEOUT_S)
    except (KafkaError, OSError, asyncio.IncompleteReadError) as error:
        # aiokafka wraps a closed stream in KafkaConnectionError; its cause says how it closed
        cause = error.__cause__
        if isinstance(error, KafkaConnectionError) and isinstance(cause, ssl.SSLError):
            return cause
        return error
    return None


class _BootstrapNoise(logging.Filter):
    """Drops aiokafka's own line about a failed bootstrap: `explain` says it better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in BOOTSTRAP_LOGS


@contextlib.contextmanager
def quiet_bootstrap_errors() -> Iterator[None]:
    """While inside, aiokafka does not log its failed bootstrap attempts."""
    noise = _BootstrapNoise()
    target = logging.getLogger("aiokafka")
    target.addFilter(noise)
    try:
        yield
    finally:
        target.removeFilter(noise)


# --- what the principal may do -------------------------------------------------------------


def _denied(settings: Settings, operations: Collection[str], kind: str, name: str) -> str:
    ops = ", ".join(sorted(operations, key=list(confluent.OPERATIONS).index))
    return f"not authorized: {principal(settings)} may not {ops} {kind} {name}"


def _missing(operations: Collection[str], granted: set[str] | None) -> set[str]:
    """The operations not granted (none when the broker did not tell)."""
    return set() if granted is None else set(operations) - granted


async def check_topics(
    admin: AdminClient, settings: Settings, needs: Mapping[str, Collection[str]]
) -> None:
    """AccessDenied naming the first topic (in `needs` order) and the operations the principal
    may not do with it. Topics that do not exist are left to the caller. One Metadata request
    (never one that creates a topic)."""
    if not needs:
        return
    futures = admin.describe_topics(
        TopicCollection(list(needs)),
        include_authorized_operations=True,
        request_timeout=confluent.REQUEST_TIMEOUT_S,
    )
    for topic, operations in needs.items():
        try:
            description = await confluent.resolved(futures[topic])
        except KafkaException as error:
            code = confluent.error_code(error)
            if code == LibrdkafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise AccessDenied(_denied(settings, operations, "topic", topic)) from None
            if code == LibrdkafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # the caller says so
            raise confluent.as_aiokafka_error(error, topic) from error
        granted = confluent.operation_names(description.authorized_operations)
        missing = _missing(operations, granted)
        if missing:
            raise AccessDenied(_denied(settings, missing, "topic", topic))


async def check_group(
    admin: AdminClient, settings: Settings, group: str, operations: Collection[str]
) -> None:
    """AccessDenied unless the principal may do `operations` with consumer group `group`."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        future = admin.describe_consumer_groups(
            [group], include_authorized_operations=True, request_timeout=COORDINATOR_WAIT_S
        )[group]
        try:
            description = await confluent.resolved(future)
            break
        except KafkaException as error:
            code = confluent.error_code(error)
            if code == LibrdkafkaError.GROUP_AUTHORIZATION_FAILED:
                raise AccessDenied(_denied(settings, operations, "group", group)) from None
            if code == LibrdkafkaError.GROUP_ID_NOT_FOUND:
                return  # a broker that describes no group before it exists; the consumer tells
            if code not in COORDINATOR_PENDING or time.monotonic() > deadline:
                raise confluent.as_aiokafka_error(error, group) from error
            await asyncio.sleep(0.2)
    missing = _missing(operations, confluent.operation_names(description.authorized_operations))
    if missing:
        raise AccessDenied(_denied(settings, missing, "group", group))
