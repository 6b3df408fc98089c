"""The one failure handler: one line on stderr and the command's exit code for each known error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from stream_edits.cli.errors import ExitCodes, reported
from stream_edits.kafka.admin import TopicMissingError
from stream_edits.refusal import Refused
from stream_edits.rules.loader import RulesError
from stream_edits.settings import Settings

SETTINGS = Settings.model_construct(
    bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT", sasl_username=None
)


def raising(error: BaseException) -> Callable[[], int]:
    def action() -> int:
        raise error

    return action


def test_a_command_that_succeeds_keeps_its_exit_code_and_says_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert reported("reconcile", SETTINGS, lambda: 1) == 1  # "A and B differ" is no failure
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (Refused("--limit must be 0 or more, not -1"), "--limit must be 0 or more, not -1"),
        (RulesError("mue.csv", "bad unit", row=3), "bad rules: mue.csv, row 3: bad unit"),
        (FileNotFoundError(2, "No such file or directory", "x.csv"), "x.csv: No such file"),
    ],
)
def test_a_usage_failure_is_one_line_and_the_usage_exit_code(
    error: Exception, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reported("check", SETTINGS, raising(error), codes=ExitCodes(usage=5, kafka=6)) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"stream-edits check: {line}") and err.count("\n") == 1


def test_a_kafka_failure_is_explained_with_its_prefix_and_the_kafka_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = TopicMissingError("topic t does not exist: run `stream-edits topics create`")
    code = reported(
        "reconcile", SETTINGS, raising(missing), codes=ExitCodes(kafka=7), kafka_prefix="kafka: "
    )
    assert code == 7
    assert capsys.readouterr().err == (
        "stream-edits reconcile: kafka: topic t does not exist: run `stream-edits topics create`\n"
    )


def test_a_refusal_takes_no_kafka_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert reported("reconcile", SETTINGS, raising(Refused("why")), kafka_prefix="kafka: ") == 2
    assert capsys.readouterr().err == "stream-edits reconcile: why\n"


def test_kafka_failures_are_explained_with_the_settings_the_broker_was_reached_with(
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = Settings.model_construct(
        bootstrap_servers="127.0.0.1:1", security_protocol="SASL_SSL", sasl_username="admin"
    )
    refused = TopicAuthorizationFailedError()
    assert reported("kafka acls", SETTINGS, raising(refused), kafka_settings=lambda: admin) == 1
    assert "not authorized: User:admin may not use" in capsys.readouterr().err


def test_an_unreachable_broker_is_a_kafka_failure(capsys: pytest.CaptureFixture[str]) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert reported("topics", SETTINGS, raising(refused), codes=ExitCodes(kafka=3)) == 3
    assert capsys.readouterr().err.startswith("stream-edits topics: nothing listens at 127.0.0.1:1")


@pytest.mark.parametrize("error", [RuntimeError("a bug"), BrokenPipeError(32, "Broken pipe")])
def test_errors_it_does_not_know_pass_through(error: Exception) -> None:
    with pytest.raises(type(error)):
        reported("check", SETTINGS, raising(error))
