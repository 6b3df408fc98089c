"""The pure parts of the local broker: rendering, checks and error messages (no broker needed)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from stream_edits_dev.broker.local import BrokerError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_home=tmp_path / "jars",
        kafka_data_dir=tmp_path / "data",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def fake_bin(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def parse(properties: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in properties.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_server_properties_make_one_node_broker_and_controller(settings: Settings) -> None:
    props = parse(local.render_server_properties(settings, Path("/data/kraft")))
    port, cport = settings.kafka_port, settings.kafka_controller_port
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{cport}"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == "/data/kraft"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("offsets.topic.replication.factor", "1"),
        ("transaction.state.log.replication.factor", "1"),
        ("transaction.state.log.min.isr", "1"),
        ("share.coordinator.state.topic.replication.factor", "1"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("auto.create.topics.enable", "true"),
    ],
)
def test_server_properties_let_transactions_and_groups_work_on_one_node(
    settings: Settings, key: str, value: str
) -> None:
    assert parse(local.render_server_properties(settings, Path("/d")))[key] == value


def test_the_pom_pins_the_kafka_version_and_an_slf4j_1_binding() -> None:
    pom = local.render_pom("4.4.0")
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>4.4.0</version>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert "@KAFKA_VERSION@" not in pom


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {local.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("something else", None),
    ],
)
def test_java_versions_are_read_from_java_version_output(output: str, major: int | None) -> None:
    assert local.parse_java_major(output) == major


def test_a_free_port_is_not_reported_as_taken() -> None:
    assert not local.port_in_use(free_port())


def test_a_port_taken_by_another_program_is_named_in_the_error(
    settings: Settings, listening: int
) -> None:
    taken = settings.model_copy(update={"kafka_port": listening})
    with pytest.raises(BrokerError) as caught:
        local.check_ports_free(taken)
    message = str(caught.value)
    assert f"broker port 127.0.0.1:{listening} is already in use" in message
    assert "STREAM_EDITS_KAFKA_PORT" in message


def test_a_taken_controller_port_is_reported_too(settings: Settings, listening: int) -> None:
    taken = settings.model_copy(update={"kafka_controller_port": listening})
    with pytest.raises(BrokerError, match=f"controller port 127.0.0.1:{listening}"):
        local.check_ports_free(taken)


def test_start_without_java_on_path_fails_with_one_clear_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    assert local.start(settings, environ={"PATH": str(empty)}) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: `java` not found on PATH; install a Java 17+ runtime")
    assert err.count("\n") == 1
    assert not settings.kafka_data_dir.exists()


def test_start_with_java_11_fails_saying_kafka_needs_17(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bin(tmp_path, "java", """echo 'openjdk version "11.0.22" 2024-01-16' >&2""")
    assert local.start(settings, environ={"PATH": str(tmp_path)}) == 1
    assert "Kafka 4.x needs Java 17+, but" in capsys.readouterr().err


def test_start_without_maven_fails_before_touching_the_jar_cache(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bin(tmp_path, "java", """echo 'openjdk version "17.0.15" 2025-04-15' >&2""")
    assert local.start(settings, environ={"PATH": str(tmp_path)}) == 1
    assert "error: `mvn` not found on PATH; install Apache Maven" in capsys.readouterr().err
    assert not (local.BrokerPaths.of(settings).lib).exists()


def test_start_refuses_to_wipe_a_directory_it_did_not_create(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bin(tmp_path, "java", """echo 'openjdk version "17.0.15" 2025-04-15' >&2""")
    settings.kafka_data_dir.mkdir()
    (settings.kafka_data_dir / "precious.txt").write_text("keep me")
    assert local.start(settings, fresh=True, environ={"PATH": str(tmp_path)}) == 1
    assert "was not created by `stream-edits kafka`" in capsys.readouterr().err
    assert (settings.kafka_data_dir / "precious.txt").exists()


def test_maven_failures_are_reported_by_their_last_error_lines() -> None:
    output = "\n".join(
        [
            "[INFO] Scanning for projects...",
            "\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project local-kafka: Could not "
            "resolve dependencies: Could not transfer artifact org.apache.kafka:kafka_2.13:pom"
            " -> [Help 1]",
            "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.",
            "[ERROR] Re-run Maven using the -X switch to enable full debug logging.",
            "[ERROR] ",
            "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/Dependency",
        ]
    )
    assert local.maven_errors(output) == [
        "[ERROR] Failed to execute goal on project local-kafka: Could not resolve dependencies: "
        "Could not transfer artifact org.apache.kafka:kafka_2.13:pom"
    ]


def test_the_cluster_id_is_read_from_meta_properties(tmp_path: Path) -> None:
    assert local.cluster_id_of(tmp_path) is None
    (tmp_path / "meta.properties").write_text("#\nnode.id=1\ncluster.id=TRwSBdwJQfa7picO2mEeHg\n")
    assert local.cluster_id_of(tmp_path) == "TRwSBdwJQfa7picO2mEeHg"


def test_status_of_a_broker_never_started_is_stopped_with_exit_3(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.status(settings) == local.STATUS_STOPPED == 3
    assert capsys.readouterr().out == "stopped\n"


def test_a_pid_file_naming_some_other_process_does_not_count_as_running(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.kafka_data_dir.mkdir(parents=True)
    local.BrokerPaths.of(settings).pid_file.write_text(f"{os.getpid()}\n")
    assert local.running_pid(settings) is None
    assert local.stop(settings) == 0
    assert capsys.readouterr().out == "already stopped\n"
    assert not local.BrokerPaths.of(settings).pid_file.exists()


def test_a_failed_start_is_explained_by_its_root_cause_without_stack_frames() -> None:
    log = "\n".join(
        [
            "=== stream-edits: starting Kafka 4.4.0 at 2026-11-27T02:10:00+00:00",
            "[2026-11-27 02:10:01,000] ERROR an older run failed (kafka.Kafka$)",
            "=== stream-edits: starting Kafka 4.4.0 at 2026-11-27T02:17:52+00:00",
            "[2026-11-27 02:17:53,419] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)",
            "java.lang.RuntimeException: Unable to start",
            "[2026-11-27 02:17:53,500] INFO [MetadataLoader id=1] initializing (MetadataLoader)",
            "\tat kafka.server.ControllerServer.startup(ControllerServer.scala:414)",
            "Caused by: org.apache.kafka.common.KafkaException: Socket server failed to bind to "
            "127.0.0.1:9093: Address already in use.",
            "\t... 16 more",
        ]
    )
    assert local.startup_failure(log).splitlines() == [
        "  [2026-11-27 02:17:53,419] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)",
        "  java.lang.RuntimeException: Unable to start",
        "  Caused by: org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:9093: Address already in use.",
    ]
