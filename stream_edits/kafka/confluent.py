"""Kafka administration through confluent-kafka's AdminClient: ACLs, SCRAM users, and what a
principal may do with topics and groups (Kafka's authorized operations, KIP-430).

`client_config` maps Settings to librdkafka's configuration, the one place that does;
`admin_client` makes a client from it; `resolved` awaits one of its futures without blocking
the event loop; `as_aiokafka_error` gives a refusal the aiokafka exception class that
`kafka.errors.explain_cause` already explains, so every command words a refusal the same way
whichever client met it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, TypeVar

from aiokafka import errors as aiokafka_errors
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclOperation, AdminClient

from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings

REQUEST_TIMEOUT_S = 15.0
T = TypeVar("T")

# Operation names as Kafka's ACL tools and this project write them.
OPERATIONS: dict[str, AclOperation] = {
    "All": AclOperation.ALL,
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Delete": AclOperation.DELETE,
    "Alter": AclOperation.ALTER,
    "Describe": AclOperation.DESCRIBE,
    "ClusterAction": AclOperation.CLUSTER_ACTION,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    "AlterConfigs": AclOperation.ALTER_CONFIGS,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
}
OPERATION_NAMES = {operation: name for name, operation in OPERATIONS.items()}

# librdkafka's codes for a broker that could not be reached or refused the connection: the
# cause is found by `kafka.errors.probe`.
UNREACHABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError._RESOLVE,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)
REFUSALS: dict[int, type[aiokafka_errors.KafkaError]] = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: aiokafka_errors.TopicAuthorizationFailedError,
    KafkaError.GROUP_AUTHORIZATION_FAILED: aiokafka_errors.GroupAuthorizationFailedError,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: aiokafka_errors.ClusterAuthorizationFailedError,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: (
        aiokafka_errors.TransactionalIdAuthorizationFailed
    ),
}


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's connection settings (security protocol, SASL login, CA file) for `settings`.

    Without a CA file the system's CAs verify the broker, as with the aiokafka clients.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.strip() for s in settings.bootstrap_servers.split(",")),
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username or ""
        password = settings.sasl_password
        config["sasl.password"] = password.get_secret_value() if password else ""
    if settings.security_protocol in ("SSL", "SASL_SSL") and settings.ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    return config


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient for `settings` that logs nothing of its own (callers explain failures).

    A CA file that cannot be used raises aiokafka's KafkaConfigurationError naming it, as every
    other client of the project does."""
    kafka_client_kwargs(settings)  # checks the CA file
    config = {
        **client_config(settings),
        "log_level": 0,  # librdkafka's retries would print to stderr
        "error_cb": lambda _error: None,  # reported by the request that meets them
    }
    return AdminClient(config)


async def resolved(future: concurrent.futures.Future[T]) -> T:
    """The result of an AdminClient future, awaited on the running loop."""
    return await asyncio.wrap_future(future)


def error_code(error: BaseException) -> int | None:
    """librdkafka's error code of a KafkaException, else None."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        code: int = error.args[0].code()
        return code
    return None


def reason(error: KafkaException) -> str:
    """librdkafka's text of a KafkaException (the broker's message when it sent one)."""
    if error.args and isinstance(error.args[0], KafkaError):
        return str(error.args[0].str())
    return str(error)


def as_aiokafka_error(error: BaseException, names: str = "") -> BaseException:
    """An authorization refusal as aiokafka's exception class (with `names`, what was refused);
    an unreachable broker as aiokafka's failed bootstrap (which `explain` probes); else `error`."""
    code = error_code(error)
    if code in REFUSALS:
        refusal: BaseException = REFUSALS[code](names) if names else REFUSALS[code]()
        return refusal
    if code in UNREACHABLE:
        unreachable: BaseException = aiokafka_errors.KafkaConnectionError(
            f"Unable to bootstrap: {code}"
        )
        return unreachable
    return error


def operation_names(operations: list[AclOperation] | None) -> set[str] | None:
    """Names of authorized operations (None: the broker did not tell)."""
    if operations is None:
        return None
    return {OPERATION_NAMES[op] for op in operations if op in OPERATION_NAMES}
