"""Refusals in one line: how connection and authorization failures are explained, the probe that
finds the cause of a failed bootstrap (against fake listeners, no broker), aiokafka's own line
held back, and the reading of Kafka's authorized-operations bit fields."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from stream_edits.broker import access, protocol
from stream_edits.settings import Settings

SASL_SSL = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "bob",
    "sasl_password": "correct-horse-battery",
}


def settings_for(bootstrap: str = "127.0.0.1:9092", **changes: object) -> Settings:
    return Settings.model_construct(
        **{**Settings.model_construct().model_dump(), "bootstrap_servers": bootstrap, **changes}
    )


def one_line(text: str) -> str:
    assert "\n" not in text, text
    return text


def test_a_refused_login_names_the_user_and_the_settings_but_not_the_password() -> None:
    s = settings_for(**SASL_SSL)
    line = one_line(access.explain_cause(SaslAuthenticationFailed("invalid credentials"), s))
    assert line.startswith("authentication failed: the broker at 127.0.0.1:9092 refused")
    assert "SCRAM-SHA-512 login of user 'bob'" in line
    assert "STREAM_EDITS_SASL_PASSWORD" in line
    assert "correct-horse-battery" not in line


@pytest.mark.parametrize("protocol_", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_a_closed_connection_without_tls_asks_whether_the_listener_is_tls(protocol_: str) -> None:
    s = settings_for(security_protocol=protocol_)
    error = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
    assert one_line(access.explain_cause(error, s)) == (
        "the broker at 127.0.0.1:9092 closed the connection: is it a TLS listener? "
        f"(security_protocol={protocol_})"
    )


def test_a_connection_closed_after_tls_asks_whether_the_listener_wants_sasl() -> None:
    s = settings_for(security_protocol="SSL")
    error = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
    line = one_line(access.explain_cause(error, s))
    assert "after the TLS handshake: does the listener want a SASL login?" in line


def test_tls_against_a_plaintext_listener_says_so() -> None:
    s = settings_for(**SASL_SSL)
    line = one_line(access.explain_cause(ConnectionResetError(), s))
    assert "during the TLS handshake: is it a plaintext listener? (security_protocol=SASL_SSL)" in (
        line
    )


def test_an_untrusted_certificate_names_the_ca_setting(tmp_path: Path) -> None:
    s = settings_for(**SASL_SSL, ssl_cafile=tmp_path / "ca.pem")
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    line = one_line(access.explain_cause(error, s))
    assert "TLS certificate at 127.0.0.1:9092 is not trusted: self-signed certificate" in line
    assert f"STREAM_EDITS_SSL_CAFILE={tmp_path / 'ca.pem'}" in line


def test_authorization_failures_name_the_principal_and_what_was_refused() -> None:
    s = settings_for(**SASL_SSL)
    topic = access.explain_cause(TopicAuthorizationFailedError({"claim-lines"}), s)
    assert one_line(topic) == (
        "not authorized: User:bob may not use claim-lines (TopicAuthorizationFailed)"
    )
    group = access.explain_cause(GroupAuthorizationFailedError("stream-edits"), s)
    assert "User:bob may not use stream-edits (GroupAuthorizationFailed)" in group
    plain = access.explain_cause(TopicAuthorizationFailedError(), settings_for())
    assert "User:ANONYMOUS may not use a topic" in plain


def test_other_failures_keep_their_own_message() -> None:
    s = settings_for(**SASL_SSL)
    assert access.explain_cause(UnsupportedSaslMechanismError(), s) == (
        "the broker at 127.0.0.1:9092 does not accept SASL mechanism SCRAM-SHA-512 on this "
        "listener (STREAM_EDITS_SASL_MECHANISM)"
    )
    error = RequestTimedOutError("slow")
    assert access.explain_cause(error, s) == str(error)
    assert access.explain_cause(ValueError("topic x does not exist"), s) == "topic x does not exist"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_bootstrap_is_explained_by_a_probe_of_its_own() -> None:
    s = settings_for(f"127.0.0.1:{free_port()}")
    error = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1, 2)]")
    line = one_line(access.explain(error, s))
    assert line.startswith(f"nothing listens at {s.bootstrap_servers} (connection refused)")


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server whose behaviour the test picks: 'close' at once or 'hang' (never answer)."""
    behaviour: list[str] = ["close"]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour[0] == "hang":
            await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, behaviour
    finally:
        server.close()


async def test_the_probe_reports_a_listener_that_closes_the_connection(
    listener: tuple[int, list[str]],
) -> None:
    port, _ = listener
    s = settings_for(f"127.0.0.1:{port}", security_protocol="PLAINTEXT")
    cause = await access.probe(s)
    assert cause is not None
    assert "closed the connection: is it a TLS listener?" in access.explain_cause(cause, s)


async def test_the_probe_of_a_tls_client_reports_the_handshake(
    listener: tuple[int, list[str]],
) -> None:
    port, _ = listener
    s = settings_for(f"127.0.0.1:{port}", **SASL_SSL)
    cause = await access.probe(s)
    assert cause is not None
    assert "during the TLS handshake" in access.explain_cause(cause, s), repr(cause)


async def test_the_probe_gives_up_on_a_silent_listener_within_its_timeout(
    listener: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, behaviour = listener
    behaviour[0] = "hang"
    monkeypatch.setattr(access, "PROBE_TIMEOUT_S", 0.5)
    s = settings_for(f"127.0.0.1:{port}")
    began = time.monotonic()
    cause = await access.probe(s)
    assert time.monotonic() - began < 3
    assert isinstance(cause, TimeoutError)
    assert access.explain_cause(cause, s).startswith(f"no answer from 127.0.0.1:{port} within")


def test_aiokafkas_bootstrap_line_is_held_back_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("aiokafka")
    with caplog.at_level(logging.WARNING, logger="aiokafka"), access.quiet_bootstrap_errors():
        log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "SaslAuthenticationFailed")
        log.warning('Unable to request metadata from "%s:%s": %s', "127.0.0.1", 9092, "closed")
        log.error("Topic %s not found", "x")
    assert [r.getMessage() for r in caplog.records] == ["Topic x not found"]
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "later")
    assert len(caplog.records) == 2  # outside the block it is logged again


def test_authorized_operation_bits_read_as_kafkas_operation_codes() -> None:
    read, describe, describe_configs = 3, 8, 10  # org.apache.kafka.common.acl.AclOperation
    bits = (1 << read) | (1 << describe) | (1 << describe_configs)
    assert protocol.operations_of(bits) == {"Read", "Describe", "DescribeConfigs"}
    assert protocol.operations_of(0) == set()


def test_principals_are_what_the_default_principal_builder_makes() -> None:
    assert access.principal(settings_for(**SASL_SSL)) == "User:bob"
    assert access.principal(settings_for()) == "User:ANONYMOUS"
    assert access.principal(settings_for(security_protocol="SSL")) == "User:ANONYMOUS"


def test_a_ca_file_that_cannot_be_read_is_named_in_one_line(tmp_path: Path) -> None:
    from aiokafka.errors import KafkaConfigurationError

    from stream_edits.topics import kafka_client_kwargs

    missing = tmp_path / "nowhere.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for cafile, reason in ((missing, "No such file or directory"), (not_pem, "no certificate")):
        s = settings_for(**SASL_SSL, ssl_cafile=cafile)
        with pytest.raises(KafkaConfigurationError) as caught:
            kafka_client_kwargs(s)
        line = one_line(access.explain_cause(caught.value, s))
        assert line.startswith(f"cannot use STREAM_EDITS_SSL_CAFILE={cafile}: ")
        assert reason in line


class FakeClient:
    """What check_topics uses of aiokafka's client: it answers every request with `response`."""

    def __init__(self, response: object) -> None:
        self.response = response
        self.sent: list[object] = []

    def get_random_node(self) -> int:
        return 1

    async def send(self, node: int, request: object) -> object:
        self.sent.append(request)
        return self.response


class FakeAdmin:
    def __init__(self, response: object) -> None:
        self._client = FakeClient(response)


def fake_admin(response: object) -> Any:
    """An admin client as far as check_topics uses one (typed Any: it stands in for aiokafka's)."""
    return FakeAdmin(response)


def metadata(*topics: tuple[int, str, int]) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(topics=[(code, name, False, [], bits) for code, name, bits in topics])


def bits(*operations: str) -> int:
    return sum(1 << protocol.OPERATIONS[op] for op in operations)


async def test_check_topics_names_the_first_topic_and_the_operations_missing() -> None:
    s = settings_for(**SASL_SSL)
    needs = {"claim-lines": ["Read", "DescribeConfigs"], "claim-edits": ["Write"]}
    admin = fake_admin(
        metadata((0, "claim-lines", bits("Read", "Describe")), (0, "claim-edits", 0))
    )
    with pytest.raises(access.AccessDenied) as caught:
        await access.check_topics(admin, s, needs)
    assert str(caught.value) == "not authorized: User:bob may not DescribeConfigs topic claim-lines"
    # Kafka's request: Metadata v8, only these topics, never auto-created, operations included.
    request = admin._client.sent[0].prepare({3: (0, 13)})
    assert request.API_VERSION == 8
    assert request.to_object() == {
        "topics": ["claim-lines", "claim-edits"],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": True,
    }


async def test_check_topics_treats_an_undescribable_topic_as_refused_whole() -> None:
    s = settings_for(**SASL_SSL)
    admin = fake_admin(metadata((29, "claim-lines", protocol.OPERATIONS_UNKNOWN)))
    with pytest.raises(
        access.AccessDenied, match="may not Read, DescribeConfigs topic claim-lines$"
    ):
        await access.check_topics(admin, s, {"claim-lines": ["DescribeConfigs", "Read"]})


async def test_check_topics_passes_granted_missing_and_untold_topics() -> None:
    s = settings_for(**SASL_SSL)
    admin = fake_admin(
        metadata(
            (0, "a", bits("Read", "Write", "Describe")),
            (3, "b", protocol.OPERATIONS_UNKNOWN),  # UNKNOWN_TOPIC_OR_PARTITION: the caller's
            (0, "c", protocol.OPERATIONS_UNKNOWN),  # a broker that does not tell
        )
    )
    await access.check_topics(admin, s, {"a": ["Read", "Write"], "b": ["Read"], "c": ["Write"]})


def test_a_reset_connection_without_tls_reads_as_a_closed_one() -> None:
    line = access.explain_cause(ConnectionResetError(), settings_for())
    assert line.endswith(
        "closed the connection: is it a TLS listener? (security_protocol=PLAINTEXT)"
    )


async def test_the_aiokafka_internals_the_requests_go_through_are_there() -> None:
    """protocol.send and check_group use the admin client's `_client` (no public accessor in
    aiokafka 0.14); this fails, naming it, when an upgrade moves it."""
    import inspect

    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:1")
    client = admin._client
    assert callable(client.get_random_node)
    assert list(inspect.signature(client.send).parameters)[:2] == ["node_id", "request"]
    await admin.close()
