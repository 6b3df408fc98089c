"""Kafka security for real: a SASL_SSL broker of this module's own (`kafka start --security
sasl_ssl`: TLS from a generated CA, SCRAM-SHA-512, ACLs enforced), one SCRAM user per role with
the least ACLs `kafka acls` grants, every command run as a user runs it, with the settings file
`kafka users add` wrote, in STREAM_EDITS_* variables.

With the right credentials each role does its job: the worker decides what the producer
publishes as `check` does, the reader follows the decisions, a replay rebuilds them, the admin
creates topics and runs the bench; the broker denies none of them anything. With a wrong
password, without TLS, or without the Read ACL on claim-lines, a command stops within seconds
with one line that says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_edits.kafka import errors
from stream_edits.kafka.confluent import admin_client
from stream_edits.kafka.errors import AccessDenied
from stream_edits.settings import Settings
from stream_edits_dev.broker import local, security
from tests.integration.stream_harness import REPO, expected_verdicts, free_port

pytestmark = pytest.mark.broker

SAMPLE = REPO / "topics" / "samples" / "claim-lines.ndjson"
ROLES = ("worker", "producer", "reader", "replay")
FAIL_FAST_S = 10.0  # "within seconds": the slowest measured was under 2 s
Env = dict[str, str]


@dataclass
class SecureBroker:
    """The module's broker: its settings and how to run commands as one of its users."""

    settings: Settings
    workdir: Path
    start_output: str

    @property
    def files(self) -> security.SecurityFiles:
        return security.SecurityFiles.of(self.settings.kafka_data_dir)

    def base_env(self) -> Env:
        """The caller's environment without STREAM_EDITS_*, plus where the local broker is."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_EDITS_")}
        s = self.settings
        env.update(
            STREAM_EDITS_KAFKA_PORT=str(s.kafka_port),
            STREAM_EDITS_KAFKA_CONTROLLER_PORT=str(s.kafka_controller_port),
            STREAM_EDITS_KAFKA_DATA_DIR=str(s.kafka_data_dir),
            STREAM_EDITS_KAFKA_HEAP=s.kafka_heap,
            STREAM_EDITS_BOOTSTRAP_SERVERS=f"127.0.0.1:{s.kafka_port}",
        )
        return env

    def env_of(self, user: str, **changes: str) -> Env:
        """What `. security/users/USER.env` gives a shell, with `changes` on top."""
        return {**self.base_env(), **security.read_env(self.files.env_file(user)), **changes}

    def settings_of(self, user: str) -> Settings:
        return security.user_settings(Settings(), security.read_env(self.files.env_file(user)))


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float


def run(env: Env, *args: str, timeout: float = 120) -> Ran:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stream_edits", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A sasl_ssl broker on free ports with a user per role (and `noread`) and their ACLs."""
    workdir = tmp_path_factory.mktemp("secure")
    settings = Settings(
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_data_dir=workdir / "kafka",
        kafka_heap="-Xms256m -Xmx512m",
    )
    secure = SecureBroker(settings, workdir, "")
    began = time.monotonic()
    started = run(secure.base_env(), "kafka", "start", "--fresh", "--security", "sasl_ssl")
    try:
        assert started.code == 0, started.out + started.err
        print(f"sasl_ssl broker ready in {time.monotonic() - began:.1f} s")
        secure.start_output = started.out
        admin = secure.base_env()
        for user in (*ROLES, "noread"):
            added = run(admin, "kafka", "users", "add", user)
            assert added.code == 0, added.err
        grants = [
            ["--role", "worker", "--principal", "User:worker"],
            ["--role", "producer", "--principal", "User:producer"],
            ["--role", "reader", "--principal", "User:reader", "--group", "readers"],
            ["--role", "replay", "--principal", "User:replay", "--output-topic", "audit-sec"],
        ]
        for grant in grants:
            granted = run(admin, "kafka", "acls", *grant)
            assert granted.code == 0, granted.err
        # noread: everything the worker needs, except on claim-lines (granted for another input).
        elsewhere = {**admin, "STREAM_EDITS_INPUT_TOPIC": "other-lines"}
        granted = run(elsewhere, "kafka", "acls", "--role", "worker", "--principal", "User:noread")
        assert granted.code == 0, granted.err
        yield secure
    finally:
        local.stop(settings)


def denials(broker: SecureBroker, principal: str) -> list[str]:
    """The broker's authorizer log lines refusing `principal` anything."""
    log = (broker.settings.kafka_data_dir / "broker.log").read_text(errors="replace")
    return [line for line in log.splitlines() if f"Principal = {principal} is Denied" in line]


def latest(decisions: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[str, list[str], int]]:
    found: dict[tuple[str, int], tuple[str, list[str], int]] = {}
    for d in decisions:
        key = (d["claim_id"], d["line_number"])
        if key not in found or d["revision"] >= found[key][2]:
            found[key] = (d["status"], [e["code"] for e in d["edits"]], d["revision"])
    return found


def test_the_broker_starts_with_tls_scram_and_acls_and_keeps_its_secrets_private(
    broker: SecureBroker,
) -> None:
    files = broker.files
    assert f"SASL_SSL (SCRAM-SHA-512), ACLs enforced; CA: {files.ca}" in broker.start_output
    assert str(files.env_file("admin")) in broker.start_output
    mode = {path: path.stat().st_mode & 0o777 for path in files.root.rglob("*")}
    assert files.root.stat().st_mode & 0o777 == 0o700
    for user in ("admin", "kafka-broker", *ROLES):
        assert mode[files.env_file(user)] == 0o600
    assert mode[files.keystore] == 0o600
    properties = broker.settings.kafka_data_dir / "server.properties"
    assert properties.stat().st_mode & 0o777 == 0o600
    admin_password = security.read_env(files.env_file("admin"))["STREAM_EDITS_SASL_PASSWORD"]
    assert admin_password not in properties.read_text()
    pid = local.running_pid(broker.settings)
    assert pid is not None
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    assert admin_password not in command_line
    # The mode sticks to the data dir: asking for another one needs --fresh.
    switched = run(broker.base_env(), "kafka", "start", "--security", "plaintext")
    assert switched.code == 1
    assert switched.err.count("\n") == 1, switched.err
    assert switched.err.endswith("add --fresh to wipe it and start with --security plaintext\n")


def test_every_role_does_its_job_with_its_least_acls(broker: SecureBroker) -> None:
    created = run(broker.env_of("admin"), "topics", "create")
    assert created.code == 0, created.err
    worker_env = broker.env_of(
        "worker",
        STREAM_EDITS_DATA_DIR=str(broker.workdir / "worker-state"),
        STREAM_EDITS_WEB_PORT=str(free_port()),
    )
    log_path = broker.workdir / "worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stream_edits", "worker", "--loglevel", "info"],
            cwd=REPO,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        produced = run(broker.env_of("producer"), "produce", str(SAMPLE), "--no-progress")
        assert produced.code == 0, produced.err
        lines = SAMPLE.read_bytes().splitlines()
        assert f"published {len(lines)} lines" in produced.err
        expected = expected_verdicts(lines)

        seen: dict[tuple[str, int], tuple[str, list[str], int]] = {}
        deadline = time.monotonic() + 90
        while seen != expected and time.monotonic() < deadline:
            assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
            tail = ["tail", "--json", "--from-beginning", "--idle-exit", "2"]
            followed = run(broker.env_of("reader"), *tail)
            assert followed.code == 0, followed.err
            seen = latest([orjson.loads(line) for line in followed.out.splitlines()])
        assert seen == expected, log_path.read_text(errors="replace")[-3000:]

        replayed = run(
            broker.env_of("replay"), "replay", "--output-topic", "audit-sec", "--json",
            "--no-progress",
        )  # fmt: skip
        assert replayed.code == 0, replayed.err
        assert orjson.loads(replayed.out)["lines_read"] == len(lines)
        agreed = run(broker.env_of("admin"), "reconcile", "claim-edits", "audit-sec")
        assert agreed.code == 0, agreed.out + agreed.err
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    for role in ROLES:
        assert denials(broker, f"User:{role}") == [], role


COMMANDS = {
    "topics create": ["topics", "create"],
    "produce": ["produce", str(SAMPLE), "--no-progress"],
    "tail": ["tail", "--idle-exit", "1"],
    "worker": ["worker"],
    "replay": ["replay", "--output-topic", "audit-never", "--no-progress"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password_is_refused_within_seconds_in_one_line(
    broker: SecureBroker, command: str
) -> None:
    env = broker.env_of("worker", STREAM_EDITS_SASL_PASSWORD="not-the-password-123")
    ran = run(env, *COMMANDS[command], timeout=60)
    assert ran.code != 0
    assert ran.seconds < FAIL_FAST_S, ran.seconds
    assert ran.err.count("\n") == 1, ran.err
    assert ran.err.startswith(f"stream-edits {command.split()[0]}: authentication failed: ")
    assert "SCRAM-SHA-512 login of user 'worker'" in ran.err
    assert "not-the-password-123" not in ran.err + ran.out


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "PLAINTEXT"])
@pytest.mark.parametrize("command", ["topics create", "produce", "tail", "worker"])
def test_a_client_without_tls_is_refused_within_seconds_in_one_line(
    broker: SecureBroker, command: str, protocol: str
) -> None:
    env = broker.env_of("worker", STREAM_EDITS_SECURITY_PROTOCOL=protocol)
    ran = run(env, *COMMANDS[command], timeout=60)
    assert ran.code != 0
    assert ran.seconds < FAIL_FAST_S, ran.seconds
    assert ran.err.count("\n") == 1, ran.err
    assert ran.err.endswith(
        f"closed the connection: is it a TLS listener? (security_protocol={protocol})\n"
    )


def test_a_worker_without_read_on_claim_lines_is_refused_and_says_so(
    broker: SecureBroker,
) -> None:
    env = broker.env_of("noread", STREAM_EDITS_DATA_DIR=str(broker.workdir / "noread-state"))
    ran = run(env, "worker", timeout=60)
    assert ran.code == 2
    assert ran.seconds < FAIL_FAST_S, ran.seconds
    assert ran.err.count("\n") == 1, ran.err
    assert ran.err.startswith(
        "stream-edits worker: not authorized: User:noread may not Read, DescribeConfigs topic "
        "claim-lines; the worker's ACLs: `stream-edits kafka acls --role worker --principal "
        "User:noread`"
    )


@pytest.mark.parametrize(
    ("user", "command", "refusal"),
    [
        ("reader", ["replay", "--output-topic", "audit-sec"], "Read topic claim-lines"),
        ("producer", ["tail", "--idle-exit", "1"], "Read topic claim-edits"),
        ("reader", ["produce", str(SAMPLE)], "Write topic claim-lines"),
        ("reader", ["tail", "--dlq", "--idle-exit", "1"], "Read topic claim-lines-dlq"),
    ],
)
def test_a_role_outside_its_acls_is_refused_naming_topic_and_operation(
    broker: SecureBroker, user: str, command: list[str], refusal: str
) -> None:
    ran = run(broker.env_of(user), *command, timeout=60)
    assert ran.code == 1
    assert ran.err.count("\n") == 1, ran.err
    assert ran.err.endswith(f": not authorized: User:{user} may not {refusal}\n"), ran.err


async def test_a_group_without_an_acl_is_named(broker: SecureBroker) -> None:
    reader = broker.settings_of("reader")
    admin = admin_client(reader)
    await errors.check_group(admin, reader, "readers", ["Read"])  # granted with --group
    with pytest.raises(AccessDenied, match="User:reader may not Read group stream-edits$"):
        await errors.check_group(admin, reader, "stream-edits", ["Read"])


def test_the_bench_runs_its_pipelines_over_sasl_ssl(broker: SecureBroker) -> None:
    """Raw aiokafka, the Faust pass-through and the processor, each a process of its own that
    takes its security settings from the environment, and the replay (unkeyed input is the
    processor again)."""
    out = broker.workdir / "bench"
    ran = run(
        broker.env_of("admin"),
        "bench", "--lines", "200", "--rates", "100", "--latency-seconds", "1",
        "--quiet-seconds", "0.2", "--pipelines", "raw,faust,processor", "--out", str(out),
        timeout=240,
    )  # fmt: skip
    assert ran.code == 0, ran.out[-2000:] + ran.err[-2000:]
    report = orjson.loads((out / "bench.json").read_bytes())
    assert set(report["pipelines"]) == {"raw", "faust", "processor"}
    for name, result in report["pipelines"].items():
        assert "error" not in result, (name, result)
        assert result["throughput"]["lines_done"] == 200, (name, result["throughput"])
        assert result["latency"]["100"]["missing"] == 0, (name, result["latency"])
    assert report["replay"]["lines_read"] == 200
