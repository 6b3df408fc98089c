"""The processes of a chaos run: its own broker and its workers, and the faults done to them.

The broker is started with `stream-edits kafka start` (the same jars, free ports, a data dir in
the run's directory) and killed with SIGKILL on the pid its data dir records; the workers are
`python -m stream_edits worker` processes, each with its own data dir, web port and log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from stream_edits.settings import Settings
from stream_edits_dev.broker import local

BROKER_HEAP = "-Xms256m -Xmx512m"
SESSION_TIMEOUT_S = 6.0  # a killed worker's partitions move after this
STOP_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 2.0


class ClusterError(Exception):
    """A process of the run could not be started."""


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_settings(base: Settings, workdir: Path, partitions: int) -> Settings:
    """The run's settings: its own broker on free ports with its data in `workdir`."""
    port, controller = free_ports(2)
    return base.model_copy(
        update={
            "bootstrap_servers": f"127.0.0.1:{port}",
            "security_protocol": "PLAINTEXT",
            "sasl_mechanism": None,
            "kafka_port": port,
            "kafka_controller_port": controller,
            "kafka_data_dir": workdir / "kafka",
            "kafka_heap": BROKER_HEAP,
            "partitions": partitions,
            "replication_factor": 1,
            "store": "rocksdb://",
            "session_timeout_s": SESSION_TIMEOUT_S,
        }
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment every command of the run gets: its broker, topics and app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_EDITS_")}
    names = (
        "bootstrap_servers", "security_protocol", "input_topic", "output_topic", "dlq_topic",
        "partitions", "replication_factor", "max_message_bytes", "app_id", "store",
        "session_timeout_s", "processing_guarantee", "kafka_version", "kafka_home",
        "kafka_data_dir", "kafka_port", "kafka_controller_port", "kafka_heap", "batch_max",
        "member_cache", "producer_linger_ms", "producer_max_batch_bytes", "horizon_days",
    )  # fmt: skip
    for name in names:
        env[f"STREAM_EDITS_{name.upper()}"] = str(getattr(settings, name))
    if settings.rules_dir is not None:
        env["STREAM_EDITS_RULES_DIR"] = str(settings.rules_dir)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream_edits", *args]


@dataclass
class Broker:
    """The run's broker."""

    settings: Settings
    log: Path

    async def start(self, fresh: bool = False) -> float:
        """`stream-edits kafka start` (fresh: wiped, a new cluster); seconds it took."""
        began = time.monotonic()
        args = ["kafka", "start", *(["--fresh"] if fresh else [])]
        with self.log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *_cli(*args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=settings_env(self.settings),
            )
            code = await proc.wait()
        if code != 0:
            raise ClusterError(f"`stream-edits {' '.join(args)}` exited {code} (see {self.log})")
        return time.monotonic() - began

    def kill9(self) -> int:
        """SIGKILL the broker; its pid. Returns once it is gone."""
        pid = local.running_pid(self.settings)
        if pid is None:
            raise ClusterError("the broker is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while local.running_pid(self.settings) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return pid

    def stop(self) -> None:
        """Stop the broker if it runs (SIGTERM, then SIGKILL)."""
        with self.log.open("ab") as out:
            subprocess.run(
                _cli("kafka", "stop"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=settings_env(self.settings),
                timeout=120,
                check=False,
            )


@dataclass
class Worker:
    """One worker slot: a data dir, and the process running on it now (if any)."""

    name: str
    data_dir: Path
    log_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    web_port: int = 0
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    expected_exit: bool = True  # False while it runs: an exit then is a crash
    crash_counted: bool = False  # its exit by itself is counted already
    started_at: float = 0.0  # time.monotonic() of its last start

    def start(self) -> None:
        """Start `stream-edits worker` on this slot's data dir, with a fresh web port."""
        self.starts += 1
        self.started_at = time.monotonic()
        self.crash_counted = False
        self.web_port = free_ports(1)[0]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last
        env = {
            **self.env,
            "STREAM_EDITS_DATA_DIR": str(self.data_dir),
            "STREAM_EDITS_WEB_PORT": str(self.web_port),
        }
        log = self.log_dir / f"worker-{self.name}.{self.starts}.log"
        self.logs.append(log)
        out: IO[bytes]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                _cli("worker", "--loglevel", "info"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.expected_exit = False

    @property
    def running(self) -> bool:
        """True while its process runs."""
        return self.proc is not None and self.proc.poll() is None

    def crashed(self) -> int | None:
        """The exit code when the process ended without being told to."""
        if self.proc is None or self.expected_exit:
            return None
        return self.proc.poll()

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    async def terminate(self) -> None:
        """SIGTERM and wait for a clean stop (SIGKILL after STOP_TIMEOUT_S)."""
        self.expected_exit = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    def wipe(self) -> None:
        """Delete the slot's local state (only while stopped)."""
        assert not self.running
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def replace_state(self, source: Path) -> None:
        """Put a copy of another data dir in place of this slot's (only while stopped)."""
        self.wipe()
        shutil.copytree(source, self.data_dir, symlinks=True)

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        """True when its /health/ answers 200."""
        if not self.running:
            return False
        url = f"http://127.0.0.1:{self.web_port}/health/"
        try:
            timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
            async with session.get(url, timeout=timeout) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its latest log."""
        if not self.logs:
            return ""
        with contextlib.suppress(OSError):
            return self.logs[-1].read_text(errors="replace")[-chars:]
        return ""

    def log_text(self) -> str:
        """All of its logs, in order."""
        parts = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)
