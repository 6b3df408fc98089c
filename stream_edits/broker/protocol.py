"""Kafka requests aiokafka 0.14 does not send for us, built on its own protocol classes.

aiokafka's admin client has no method for ACLs or SCRAM users, and its Metadata request stops at
v5, before topics report what the caller may do with them (v8, KIP-430); its DescribeGroups v3
reads the v2 response, without the group's authorized operations. Everything here goes
through `AIOKafkaClient.send`, which negotiates the version with the broker like any of
aiokafka's requests (Kafka 4.4 serves CreateAcls and DescribeAcls v1-3, AlterUserScramCredentials
v0, Metadata v0-13).

Codes below are Kafka's (org.apache.kafka.common.acl.AclOperation, resource.ResourceType,
resource.PatternType, acl.AclPermissionType).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DescribeAclsRequest_v1,
    DescribeGroupsRequest_v3,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    Boolean,
    Bytes,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

OPERATIONS = {
    "All": 2,
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Delete": 6,
    "Alter": 7,
    "Describe": 8,
    "ClusterAction": 9,
    "DescribeConfigs": 10,
    "AlterConfigs": 11,
    "IdempotentWrite": 12,
}
OPERATION_NAMES = {code: name for name, code in OPERATIONS.items()}
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional-id": 5}
RESOURCE_NAMES = {code: name for name, code in RESOURCE_TYPES.items()}
PATTERN_TYPES = {"any": 1, "literal": 3, "prefixed": 4}
PATTERN_NAMES = {code: name for name, code in PATTERN_TYPES.items()}
ALLOW = 3
ANY_OPERATION = 1
ANY_PERMISSION = 1
# What a broker answers for authorized operations it was not asked for.
OPERATIONS_UNKNOWN = -(2**31)
SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
SCRAM_ITERATIONS = 8192  # Kafka's default; it accepts 4096 to 16384


# --- SCRAM ----------------------------------------------------------------------------------


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802: Hi(password, salt, i), i.e. PBKDF2-HMAC). Brokers keep
    keys derived from it; the password itself never leaves the machine that chose it."""
    _, digest = SCRAM_MECHANISMS[mechanism]
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def storage_scram_argument(
    mechanism: str, name: str, password: str, salt: bytes | None = None
) -> str:
    """`kafka-storage format --add-scram` for a user, given as salt and salted password: the
    password does not appear on the command line (which `ps` shows to every local user)."""
    salt = salt or new_salt()
    salted = salted_password(mechanism, password, salt, SCRAM_ITERATIONS)
    b64 = base64.b64encode
    return (
        f"{mechanism}=[name={name},iterations={SCRAM_ITERATIONS},"
        f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
    )


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentials(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 51

    def __init__(self, upsertions: Sequence[tuple[str, str, str]]) -> None:
        """Create or replace (name, mechanism, password) credentials."""
        self.upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for name, mechanism, password in upsertions:
            salt = new_salt()
            salted = salted_password(mechanism, password, salt, SCRAM_ITERATIONS)
            code = SCRAM_MECHANISMS[mechanism][0]
            self.upsertions.append((name, code, SCRAM_ITERATIONS, salt, salted, {}))

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        return request_struct_class([], self.upsertions, {})


# --- ACLs -----------------------------------------------------------------------------------

# (resource type, resource name, pattern type, principal, host, operation, permission)
AclTuple = tuple[int, str, int, str, str, int, int]


class CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    """Several ACL bindings in one request (aiokafka's own CreateAclsRequest takes one)."""

    API_KEY = 30

    def __init__(self, creations: Sequence[AclTuple]) -> None:
        self.creations = list(creations)

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


class DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    """Every ALLOW or DENY binding of one principal, on any resource."""

    API_KEY = 29

    def __init__(self, principal: str) -> None:
        self.principal = principal

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        # resource type ANY (1), any name, pattern ANY, this principal, any host, op, permission
        return request_struct_class(
            1, None, PATTERN_TYPES["any"], self.principal, None, ANY_OPERATION, ANY_PERMISSION
        )


# --- Metadata and DescribeGroups with authorized operations ---------------------------------------


class MetadataResponse_v8(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
                ("rack", String("utf-8")),
            ),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class MetadataRequest_v8(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = MetadataResponse_v8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class TopicOperations(Request[MetadataRequest_v8]):  # type: ignore[misc]  # aiokafka is untyped
    """Metadata of the named topics with what the caller may do with each; never creates one."""

    API_KEY = 3

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = list(topics)

    def build(self, request_struct_class: type[MetadataRequest_v8]) -> MetadataRequest_v8:
        return request_struct_class(self.topics, False, False, True)


class DescribeGroupsResponse_v3(Response):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's DescribeGroupsRequest_v3 expects the v2 response and drops the v3 field."""

    API_KEY = 15
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            Array(
                ("error_code", Int16),
                ("group", String("utf-8")),
                ("state", String("utf-8")),
                ("protocol_type", String("utf-8")),
                ("protocol", String("utf-8")),
                (
                    "members",
                    Array(
                        ("member_id", String("utf-8")),
                        ("client_id", String("utf-8")),
                        ("client_host", String("utf-8")),
                        ("member_metadata", Bytes),
                        ("member_assignment", Bytes),
                    ),
                ),
                ("authorized_operations", Int32),
            ),
        ),
    )


class DescribeGroupsRequest_v3Operations(DescribeGroupsRequest_v3):  # type: ignore[misc]
    RESPONSE_TYPE = DescribeGroupsResponse_v3


class GroupOperations(Request[DescribeGroupsRequest_v3Operations]):  # type: ignore[misc]
    """DescribeGroups of one group with what the caller may do with it (v3, KIP-430)."""

    API_KEY = 15

    def __init__(self, group: str) -> None:
        self.group = group

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class([self.group], True)


def operations_of(bits: int) -> set[str]:
    """The operation names set in an authorized-operations bit field."""
    return {name for name, code in OPERATIONS.items() if bits & (1 << code)}


async def send(admin: AIOKafkaAdminClient, request: Request[Any]) -> Any:
    """Send `request` to any broker of a started admin client (a broker forwards what only the
    controller can do) and return the response."""
    client = admin._client  # aiokafka keeps the connection pool here; no public accessor
    return await client.send(client.get_random_node(), request)
