"""docker-compose.yml and the Dockerfile agree with Settings (parsed only; no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_edits.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "STREAM_EDITS_"


def default(field: str) -> Any:
    """The shipped default of a Settings field (what the files must match, whatever the env)."""
    return Settings.model_fields[field].get_default(call_default_factory=True)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def dockerfile_env_names() -> set[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return {
        name
        for line in lines
        if line.startswith("ENV ")
        for name in re.findall(r"(\w+)=", line[len("ENV ") :])
    }


def test_compose_runs_kafka_then_creates_topics_then_the_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"kafka", "topics", "worker"}
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    worker_deps = services["worker"]["depends_on"]
    assert worker_deps["topics"]["condition"] == "service_completed_successfully"
    assert services["worker"]["command"][0] == "worker"


def test_the_kafka_image_is_the_pinned_kafka_4_version(compose: dict[str, Any]) -> None:
    image, tag = compose["services"]["kafka"]["image"].rsplit(":", 1)
    assert image == "apache/kafka"
    assert tag.split(".")[0] == "4"
    assert tag == default("kafka_version")


def test_the_kafka_service_is_a_single_kraft_node_reachable_in_network_and_from_the_host(
    compose: dict[str, Any],
) -> None:
    env = environment(compose["services"]["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "127.0.0.1:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_the_worker_publishes_the_settings_web_port_on_every_interface(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    env = environment(worker)
    web_port = default("web_port")
    assert f"{web_port}:{web_port}" in [str(port) for port in worker["ports"]]
    assert int(env["STREAM_EDITS_WEB_PORT"]) == web_port
    assert env["STREAM_EDITS_WEB_HOST"] == "0.0.0.0"
    assert env["STREAM_EDITS_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_every_stream_edits_variable_names_a_real_settings_field(compose: dict[str, Any]) -> None:
    names = dockerfile_env_names()
    for service in compose["services"].values():
        names |= set(environment(service))
    ours = {name for name in names if name.startswith(ENV_PREFIX)}
    assert ours, "expected STREAM_EDITS_* variables in the compose file and Dockerfile"
    unknown = {n for n in ours if n[len(ENV_PREFIX) :].lower() not in Settings.model_fields}
    assert not unknown, f"not Settings fields: {sorted(unknown)}"


def test_the_dockerfile_exposes_the_web_port_and_runs_the_worker() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(rf"^EXPOSE {default('web_port')}$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["stream-edits"]' in text
    assert re.search(r'^CMD \["worker"', text, re.MULTILINE)
