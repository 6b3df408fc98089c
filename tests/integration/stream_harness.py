"""Running real workers against the real broker: unique topics, worker processes, readers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from stream_edits.jobs.check import final_decisions
from stream_edits.jobs.produce import ProgressBar, publish
from stream_edits.kafka.admin import create_topics
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.models import DeadLetterHeaders
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings

Verdicts = dict[tuple[str, int], tuple[str, list[str], int]]
# Per line, each edit's code and related lines ([claim_id, line_number] pairs).
Causes = dict[tuple[str, int], list[tuple[str, list[list[Any]]]]]
Record = ConsumerRecord[bytes, bytes]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected_verdicts(lines: Iterable[bytes]) -> Verdicts:
    """What `stream-edits check` decides for the same input: status, edit codes, revision."""
    return {
        (d.claim_id, d.line_number): (d.status.value, [e.code for e in d.edits], d.revision)
        for d in final_decisions(lines, load_rules())
    }


def expected_causes(lines: Iterable[bytes]) -> Causes:
    """Each line's edits with their related lines, as `stream-edits check` decides them."""
    return causes_of(d.to_wire() for d in final_decisions(lines, load_rules()))


def causes_of(decisions: Iterable[dict[str, Any]]) -> Causes:
    """Each line's edits with their related lines, from decisions as published (the latest of a
    line wins)."""
    return {
        (d["claim_id"], d["line_number"]): [
            (e["code"], [[r["claim_id"], r["line_number"]] for r in e["related_lines"]])
            for e in d["edits"]
        ]
        for d in decisions
    }


def assert_denials_name_their_causes(causes: Causes) -> None:
    """A PTP denial names the line it was bundled into, and every edit's related lines are
    distinct lines other than the denied one."""
    for key, edits in causes.items():
        for code, related in edits:
            assert len({tuple(r) for r in related}) == len(related), (key, code)
            assert list(key) not in related, (key, code)
            if code == "PTP_BUNDLED":
                assert len(related) == 1, (key, code)


@dataclass
class StreamRig:
    """One processor deployment under test: its own topics, app id, workers and state dirs."""

    name: str
    workdir: Path
    bootstrap_servers: str
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_ports: dict[int, int] = field(default_factory=dict)  # worker pid -> its web port

    @property
    def settings(self) -> Settings:
        """Settings for this rig (topics and app id unique to the test)."""
        return Settings(
            bootstrap_servers=self.bootstrap_servers,
            input_topic=f"lines-{self.name}",
            output_topic=f"edits-{self.name}",
            dlq_topic=f"dlq-{self.name}",
            app_id=f"app-{self.name}",
        )

    async def create_topics(self) -> None:
        """Create the rig's three topics per the contract."""
        await create_topics(self.settings)

    def env(self) -> dict[str, str]:
        """The environment of this rig's commands: its broker, topics and app id."""
        s = self.settings
        return {
            **os.environ,
            "STREAM_EDITS_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "STREAM_EDITS_INPUT_TOPIC": s.input_topic,
            "STREAM_EDITS_OUTPUT_TOPIC": s.output_topic,
            "STREAM_EDITS_DLQ_TOPIC": s.dlq_topic,
            "STREAM_EDITS_APP_ID": s.app_id,
        }

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `stream-edits ARGS` against this rig; its exit code and output."""
        command = [sys.executable, "-m", "stream_edits", *args]
        return subprocess.run(
            command,
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_worker(self, loglevel: str = "info") -> subprocess.Popen[bytes]:
        """Start `stream-edits worker` in its own process with its own state dir and web port."""
        index = len(self.workers)
        env = {
            **self.env(),
            "STREAM_EDITS_DATA_DIR": str(self.workdir / f"worker-{index}"),
            "STREAM_EDITS_WEB_PORT": str(free_port()),
            "STREAM_EDITS_SESSION_TIMEOUT_S": "6",
            **self.extra_env,
        }
        log = open(self.workdir / f"worker-{index}.log", "ab")  # noqa: SIM115 - closed by the OS
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_edits", "worker", "--loglevel", loglevel],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        self.web_ports[proc.pid] = int(env["STREAM_EDITS_WEB_PORT"])
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        """Stop every worker still running (SIGTERM, then SIGKILL)."""
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        """The tail of every worker's log, for assertion messages."""
        parts = []
        for path in sorted(self.workdir.glob("worker-*.log")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    async def produce(self, lines: Iterable[bytes]) -> int:
        """Publish NDJSON lines keyed by member_id, like `stream-edits produce`."""
        return await publish(self.settings, lines, ProgressBar(None, False, sys.stderr))

    async def read_records(
        self, topic: str, done: Callable[[list[Record]], bool], timeout: float
    ) -> list[Record]:
        """Every record on `topic` from the beginning, until `done(records)` or `timeout`."""
        # No group: the consumer reads every partition of the topic from the beginning.
        consumer = AIOKafkaConsumer(
            topic,
            **kafka_client_kwargs(self.settings),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            found: list[Record] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not done(found):
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in batch.values():
                    found.extend(records)
            return found
        finally:
            await consumer.stop()

    async def read(
        self, topic: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """Every JSON value on `topic` from the beginning, until `done(values)` or `timeout`."""
        values: list[dict[str, Any]] = []

        def decoded(records: list[Record]) -> bool:
            for record in records[len(seen) :]:  # only those read since the last call
                seen.append(record)
                if record.value:
                    values.append(orjson.loads(record.value))
            return done(values)

        seen: list[Record] = []

        await self.read_records(topic, decoded, timeout)
        return values

    async def dead_letters(
        self, count: int, timeout: float
    ) -> list[tuple[DeadLetterHeaders, Record]]:
        """The first `count` dead letters (or those there are after `timeout`), with their
        context read from the headers."""
        records = await self.read_records(
            self.settings.dlq_topic, lambda found: len(found) >= count, timeout
        )
        return [(DeadLetterHeaders.from_headers(r.headers), r) for r in records]

    async def verdicts(
        self, until: Verdicts, timeout: float, revisions: bool = True, read_all: bool = False
    ) -> Verdicts:
        """Latest decision per line on the output topic, read until it equals `until` (with
        `read_all`, everything published within `timeout`).

        Without `revisions`, every revision number reads as 0.
        """
        latest: Verdicts = {}
        applied = 0

        def done(values: list[dict[str, Any]]) -> bool:
            nonlocal applied
            for v in values[applied:]:  # only those read since the last call
                codes = [e["code"] for e in v["edits"]]
                revision = v["revision"] if revisions else 0
                latest[(v["claim_id"], v["line_number"])] = (v["status"], codes, revision)
            applied = len(values)
            return latest == until and not read_all

        await self.read(self.settings.output_topic, done, timeout)
        return latest

    async def causes(self, until: Causes, timeout: float) -> Causes:
        """Each line's latest edits with their related lines on the output topic, read until
        they equal `until`."""
        latest: Causes = {}

        def done(values: list[dict[str, Any]]) -> bool:
            latest.clear()
            latest.update(causes_of(values))
            return latest == until

        await self.read(self.settings.output_topic, done, timeout)
        return latest
