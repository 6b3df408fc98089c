"""Refusals in one line: how connection and authorization failures are explained, the probe that
finds the cause of a failed bootstrap (against fake listeners, no broker), aiokafka's own line
held back, and the reading of Kafka's authorized-operations bit fields."""

from __future__ import annotations

import asyncio
import concurrent.futures
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
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclOperation
from pydantic import SecretStr

from stream_edits.kafka import confluent, errors
from stream_edits.settings import Settings

SASL_SSL = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "bob",
    "sasl_password": SecretStr("correct-horse-battery"),
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
    line = one_line(errors.explain_cause(SaslAuthenticationFailed("invalid credentials"), s))
    assert line.startswith("authentication failed: the broker at 127.0.0.1:9092 refused")
    assert "SCRAM-SHA-512 login of user 'bob'" in line
    assert "STREAM_EDITS_SASL_PASSWORD" in line
    assert "correct-horse-battery" not in line


@pytest.mark.parametrize("protocol_", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_a_closed_connection_without_tls_asks_whether_the_listener_is_tls(protocol_: str) -> None:
    s = settings_for(security_protocol=protocol_)
    error = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
    assert one_line(errors.explain_cause(error, s)) == (
        "the broker at 127.0.0.1:9092 closed the connection: is it a TLS listener? "
        f"(security_protocol={protocol_})"
    )


def test_a_connection_closed_after_tls_asks_whether_the_listener_wants_sasl() -> None:
    s = settings_for(security_protocol="SSL")
    error = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
    line = one_line(errors.explain_cause(error, s))
    assert "after the TLS handshake: does the listener want a SASL login?" in line


def test_tls_against_a_plaintext_listener_says_so() -> None:
    s = settings_for(**SASL_SSL)
    line = one_line(errors.explain_cause(ConnectionResetError(), s))
    assert "during the TLS handshake: is it a plaintext listener? (security_protocol=SASL_SSL)" in (
        line
    )


def test_an_untrusted_certificate_names_the_ca_setting(tmp_path: Path) -> None:
    s = settings_for(**SASL_SSL, ssl_cafile=tmp_path / "ca.pem")
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    line = one_line(errors.explain_cause(error, s))
    assert "TLS certificate at 127.0.0.1:9092 is not trusted: self-signed certificate" in line
    assert f"STREAM_EDITS_SSL_CAFILE={tmp_path / 'ca.pem'}" in line


def test_authorization_failures_name_the_principal_and_what_was_refused() -> None:
    s = settings_for(**SASL_SSL)
    topic = errors.explain_cause(TopicAuthorizationFailedError({"claim-lines"}), s)
    assert one_line(topic) == (
        "not authorized: User:bob may not use claim-lines (TopicAuthorizationFailed)"
    )
    group = errors.explain_cause(GroupAuthorizationFailedError("stream-edits"), s)
    assert "User:bob may not use stream-edits (GroupAuthorizationFailed)" in group
    plain = errors.explain_cause(TopicAuthorizationFailedError(), settings_for())
    assert "User:ANONYMOUS may not use a topic" in plain


def test_other_failures_keep_their_own_message() -> None:
    s = settings_for(**SASL_SSL)
    assert errors.explain_cause(UnsupportedSaslMechanismError(), s) == (
        "the broker at 127.0.0.1:9092 does not accept SASL mechanism SCRAM-SHA-512 on this "
        "listener (STREAM_EDITS_SASL_MECHANISM)"
    )
    error = RequestTimedOutError("slow")
    assert errors.explain_cause(error, s) == str(error)
    assert errors.explain_cause(ValueError("topic x does not exist"), s) == "topic x does not exist"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_bootstrap_is_explained_by_a_probe_of_its_own() -> None:
    s = settings_for(f"127.0.0.1:{free_port()}")
    error = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1, 2)]")
    line = one_line(errors.explain(error, s))
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
    cause = await errors.probe(s)
    assert cause is not None
    assert "closed the connection: is it a TLS listener?" in errors.explain_cause(cause, s)


async def test_the_probe_of_a_tls_client_reports_the_handshake(
    listener: tuple[int, list[str]],
) -> None:
    port, _ = listener
    s = settings_for(f"127.0.0.1:{port}", **SASL_SSL)
    cause = await errors.probe(s)
    assert cause is not None
    assert "during the TLS handshake" in errors.explain_cause(cause, s), repr(cause)


async def test_the_probe_gives_up_on_a_silent_listener_within_its_timeout(
    listener: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, behaviour = listener
    behaviour[0] = "hang"
    monkeypatch.setattr(errors, "PROBE_TIMEOUT_S", 0.5)
    s = settings_for(f"127.0.0.1:{port}")
    began = time.monotonic()
    cause = await errors.probe(s)
    assert time.monotonic() - began < 3
    assert isinstance(cause, TimeoutError)
    assert errors.explain_cause(cause, s).startswith(f"no answer from 127.0.0.1:{port} within")


def test_aiokafkas_bootstrap_line_is_held_back_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("aiokafka")
    with caplog.at_level(logging.WARNING, logger="aiokafka"), errors.quiet_bootstrap_errors():
        log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "SaslAuthenticationFailed")
        log.warning('Unable to request metadata from "%s:%s": %s', "127.0.0.1", 9092, "closed")
        log.error("Topic %s not found", "x")
    assert [r.getMessage() for r in caplog.records] == ["Topic x not found"]
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "later")
    assert len(caplog.records) == 2  # outside the block it is logged again


def test_authorized_operations_read_as_kafkas_operation_names() -> None:
    granted = [AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS]
    assert confluent.operation_names(granted) == {"Read", "Describe", "DescribeConfigs"}
    assert confluent.operation_names([]) == set()
    assert confluent.operation_names(None) is None  # the broker did not tell
    # Kafka's codes (org.apache.kafka.common.acl.AclOperation)
    assert {name: op.value for name, op in confluent.OPERATIONS.items() if name[0] in "RWD"} == {
        "Read": 3,
        "Write": 4,
        "Delete": 6,
        "Describe": 8,
        "DescribeConfigs": 10,
    }


def test_principals_are_what_the_default_principal_builder_makes() -> None:
    assert errors.principal(settings_for(**SASL_SSL)) == "User:bob"
    assert errors.principal(settings_for()) == "User:ANONYMOUS"
    assert errors.principal(settings_for(security_protocol="SSL")) == "User:ANONYMOUS"


def test_a_ca_file_that_cannot_be_read_is_named_in_one_line(tmp_path: Path) -> None:
    from aiokafka.errors import KafkaConfigurationError

    from stream_edits.kafka.topics import kafka_client_kwargs

    missing = tmp_path / "nowhere.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for cafile, reason in ((missing, "No such file or directory"), (not_pem, "no certificate")):
        s = settings_for(**SASL_SSL, ssl_cafile=cafile)
        with pytest.raises(KafkaConfigurationError) as caught:
            kafka_client_kwargs(s)
        line = one_line(errors.explain_cause(caught.value, s))
        assert line.startswith(f"cannot use STREAM_EDITS_SSL_CAFILE={cafile}: ")
        assert reason in line


def refused(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


class FakeAdmin:
    """What check_topics and check_group use of confluent-kafka's AdminClient: descriptions (or
    errors) per name, resolved at once; the calls are recorded."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str], dict[str, object]]] = []

    def _futures(self, names: list[str]) -> dict[str, concurrent.futures.Future[object]]:
        futures = {}
        for name in names:
            future: concurrent.futures.Future[object] = concurrent.futures.Future()
            answer = self.answers[name]
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
            futures[name] = future
        return futures

    def describe_topics(self, topics: Any, **options: object) -> dict[str, Any]:
        self.calls.append(("describe_topics", list(topics.topic_names), options))
        return self._futures(list(topics.topic_names))

    def describe_consumer_groups(self, groups: list[str], **options: object) -> dict[str, Any]:
        self.calls.append(("describe_consumer_groups", groups, options))
        return self._futures(groups)


def described(*operations: str | None) -> object:
    """A topic or group description granting `operations` (None: the broker did not tell)."""
    from types import SimpleNamespace

    granted = None if operations == (None,) else [confluent.OPERATIONS[op] for op in operations]
    return SimpleNamespace(authorized_operations=granted)


def fake_admin(**answers: object) -> Any:
    """An admin client as far as the checks use one (typed Any: it stands in for confluent's)."""
    return FakeAdmin({name.replace("_", "-"): answer for name, answer in answers.items()})


async def test_check_topics_names_the_first_topic_and_the_operations_missing() -> None:
    s = settings_for(**SASL_SSL)
    needs = {"claim-lines": ["Read", "DescribeConfigs"], "claim-edits": ["Write"]}
    admin = fake_admin(claim_lines=described("Read", "Describe"), claim_edits=described())
    with pytest.raises(errors.AccessDenied) as caught:
        await errors.check_topics(admin, s, needs)
    assert str(caught.value) == "not authorized: User:bob may not DescribeConfigs topic claim-lines"
    # One request for these topics only, operations included.
    ((call, names, options),) = admin.calls
    assert (call, names) == ("describe_topics", ["claim-lines", "claim-edits"])
    assert options["include_authorized_operations"] is True


async def test_check_topics_treats_an_undescribable_topic_as_refused_whole() -> None:
    s = settings_for(**SASL_SSL)
    admin = fake_admin(claim_lines=refused(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(
        errors.AccessDenied, match="may not Read, DescribeConfigs topic claim-lines$"
    ):
        await errors.check_topics(admin, s, {"claim-lines": ["DescribeConfigs", "Read"]})


async def test_check_topics_passes_granted_missing_and_untold_topics() -> None:
    s = settings_for(**SASL_SSL)
    admin = fake_admin(
        a=described("Read", "Write", "Describe"),
        b=refused(KafkaError.UNKNOWN_TOPIC_OR_PART),  # the caller's to report
        c=described(None),  # a broker that does not tell
    )
    await errors.check_topics(admin, s, {"a": ["Read", "Write"], "b": ["Read"], "c": ["Write"]})


async def test_check_group_names_the_group_and_the_operation() -> None:
    s = settings_for(**SASL_SSL)
    await errors.check_group(
        fake_admin(readers=described("Read", "Describe")), s, "readers", ["Read"]
    )
    with pytest.raises(errors.AccessDenied, match="User:bob may not Read group se$"):
        await errors.check_group(fake_admin(se=described("Describe")), s, "se", ["Read"])
    denied = fake_admin(se=refused(KafkaError.GROUP_AUTHORIZATION_FAILED))
    with pytest.raises(errors.AccessDenied, match="User:bob may not Read group se$"):
        await errors.check_group(denied, s, "se", ["Read"])
    ((_, _, options),) = denied.calls
    assert options["include_authorized_operations"] is True


async def test_an_unreachable_broker_during_a_check_is_explained_like_a_failed_bootstrap() -> None:
    s = settings_for(f"127.0.0.1:{free_port()}")
    admin = fake_admin(claim_lines=refused(KafkaError._TRANSPORT))
    with pytest.raises(KafkaConnectionError) as caught:
        await errors.check_topics(admin, s, {"claim-lines": ["Read"]})
    line = await asyncio.to_thread(errors.explain, caught.value, s)
    assert line.startswith(f"nothing listens at {s.bootstrap_servers} (connection refused)")


def test_confluent_refusals_read_as_the_same_one_line() -> None:
    s = settings_for(**SASL_SSL)
    topic = refused(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert errors.explain(topic, s) == (
        "not authorized: User:bob may not use a topic (TopicAuthorizationFailed)"
    )
    other = KafkaException(KafkaError(KafkaError.INVALID_CONFIG, "bad value for x"))
    assert errors.explain(other, s) == "bad value for x"


def test_a_reset_connection_without_tls_reads_as_a_closed_one() -> None:
    line = errors.explain_cause(ConnectionResetError(), settings_for())
    assert line.endswith(
        "closed the connection: is it a TLS listener? (security_protocol=PLAINTEXT)"
    )


def test_confluent_kafka_settings_come_from_the_same_settings(tmp_path: Path) -> None:
    s = settings_for("a:9092, b:9092", **SASL_SSL, ssl_cafile=tmp_path / "ca.pem")
    assert confluent.client_config(s) == {
        "bootstrap.servers": "a:9092,b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "bob",
        "sasl.password": "correct-horse-battery",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
    }
    assert confluent.client_config(settings_for()) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }
    confluent.admin_client(settings_for(**SASL_SSL))  # librdkafka accepts every key
    from aiokafka.errors import KafkaConfigurationError

    with pytest.raises(KafkaConfigurationError) as caught:  # the CA file: named in one line
        confluent.admin_client(s)
    assert errors.explain_cause(caught.value, s).startswith(
        f"cannot use STREAM_EDITS_SSL_CAFILE={tmp_path / 'ca.pem'}: "
    )
