"""`stream-edits chaos`: faults against a real local broker and real workers, with a scoreboard.

A run, all of it in one directory (a temp dir unless `--workdir`):
1. an earlier broker (when stale state is a fault): a throwaway cluster where a worker decides a
   little input of another seed (the same claim ids, other content) and keeps its state dir;
   then the broker is wiped, which makes a new cluster on the same ports;
2. the topics, the producers and worker `a`;
3. one step per fault (`plan`): the step's slice of the input (poison mixed in) is produced at
   `--rate` by all producers together while the fault strikes at a random moment of it; then
   the run waits until every running worker answers ready on /health/ and the group's lag over
   claim-lines and the repartition topic is 0, reads the output and dead-letter topics on from
   where it stopped, and scores everything produced so far against `stream-edits check`
   (`verify.score`). That moment, counted from the fault, is the step's recovery time.

The exit code is 0 only when every row is clean: no missing or wrong decision, every invalid
record dead-lettered (and no valid one), no worker exiting by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson
from rich.console import Console

from stream_edits.jobs.produce import ProgressBar, publish
from stream_edits.kafka.admin import create_topics
from stream_edits.log_safety import configure_logging
from stream_edits.rules.loader import load_rules
from stream_edits.runtime.state.healing import CLUSTER_ID_FILE
from stream_edits.settings import Settings
from stream_edits_dev.bench.workload import generate
from stream_edits_dev.chaos import inputs as chaos_inputs
from stream_edits_dev.chaos.cluster import Broker, ClusterError, Worker, run_settings, settings_env
from stream_edits_dev.chaos.inputs import Kind, Record
from stream_edits_dev.chaos.options import Config
from stream_edits_dev.chaos.plan import Fault, Step, make_plan
from stream_edits_dev.chaos.producers import DeliveryError, feed, make_producers, producer_versions
from stream_edits_dev.chaos.scoreboard import Row, document, markdown, table
from stream_edits_dev.chaos.verify import (
    Deliveries,
    HarnessError,
    LagProbe,
    Ledger,
    LineKey,
    OutputReader,
    Score,
    Verdict,
    expected_verdicts,
    score,
)

STALE_LINES = 2_000  # lines the earlier broker's worker decides
BROKER_DOWN_S = 3.0  # how long the killed broker stays down before its restart
GRACE_S = 20.0  # once caught up, how long a wrong answer has to right itself
POLL_S = 0.5
RESTART_AFTER_S = 5.0  # a worker that exited by itself is started again after this
CLUSTER_CHANGE = re.compile(r"\[WARNING\] Kafka cluster \S+ is not \S+, which the local tables")
WORKER_NAMES = "abcdef"  # worker `a` runs throughout; the others join and leave


def _say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


class Chaos:
    """One run: its broker, workers, producers, input and verification."""

    def __init__(self, config: Config, settings: Settings, workdir: Path) -> None:
        self.config = config
        self.settings = settings
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = settings_env(settings)
        self.broker = Broker(settings, self.logs / "broker-commands.log")
        self.workers = {
            name: Worker(name, workdir / "state" / f"worker-{name}", self.logs, env)
            for name in WORKER_NAMES[: config.workers]
        }
        self.stale_dir = workdir / "state" / "earlier-broker"
        self.earlier = Worker("earlier", self.stale_dir, self.logs, env)
        self.rules = load_rules(settings.rules_dir)
        self.plan: list[Step] = make_plan(
            config.lines, config.kinds, config.kills, config.seed, config.workers
        )
        self.producers = make_producers(settings)
        workload = generate(config.lines, seed=config.seed)
        self.inputs = chaos_inputs.build(
            self.plan, workload, list(self.producers), config.seed, settings.max_message_bytes
        )
        self.rng = random.Random(f"chaos-run-{config.seed}")
        self.ledger = Ledger()
        self.reader = OutputReader(settings, self.ledger)
        self.lag = LagProbe(settings)
        self.deliveries = Deliveries()
        self.produced: list[Record] = []
        self.rows: list[Row] = []
        self.timings: dict[str, float] = {}
        self.session: aiohttp.ClientSession | None = None

    # -- the run ------------------------------------------------------------------------------

    async def main(self) -> None:
        """Run every step; rows accumulate in self.rows."""
        try:
            async with aiohttp.ClientSession() as session:
                self.session = session
                if any(step.fault is Fault.STALE_STATE for step in self.plan):
                    began = time.monotonic()
                    await self.earlier_broker()
                    self.timings["earlier_broker_s"] = round(time.monotonic() - began, 1)
                    _say(f"earlier broker: state kept in {self.stale_dir}")
                else:
                    await self.broker.start(fresh=True)
                began = time.monotonic()
                await create_topics(self.settings)
                for producer in self.producers.values():
                    await producer.start()
                self.workers["a"].start()
                for number, (step, records) in enumerate(
                    zip(self.plan, self.inputs, strict=True), start=1
                ):
                    row = await self.run_step(step, records)
                    self.rows.append(row)
                    state = "ok" if row.ok else "FAILED"
                    _say(
                        f"[{number}/{len(self.plan)}] {row.fault}: {row.lines:,} records, "
                        f"{row.score.missing} missing, {row.score.wrong} wrong, "
                        f"{row.score.dead_letters_missing} dead letters missing, "
                        f"recovery {row.recovery_text()}: {state}"
                        + (f" ({'; '.join(row.notes)})" if row.notes else "")
                    )
                self.timings["steps_s"] = round(time.monotonic() - began, 1)
        finally:
            for producer in self.producers.values():
                with contextlib.suppress(Exception):  # a producer stuck on a lost broker
                    await asyncio.wait_for(producer.stop(), 15)
            await self.reader.close()
            await self.lag.close()

    def stop_processes(self) -> None:
        """Stop every worker and the broker (also after a failure or the time limit)."""
        for worker in [*self.workers.values(), self.earlier]:
            with contextlib.suppress(Exception):
                worker.kill9()
        with contextlib.suppress(Exception):
            self.broker.stop()

    async def earlier_broker(self) -> None:
        """A throwaway cluster whose worker's state dir later plays the stale state."""
        await self.broker.start(fresh=True)
        await create_topics(self.settings)
        self.earlier.start()
        lines = generate(min(STALE_LINES, self.config.lines), seed=self.config.seed + 1)
        await publish(self.settings, lines, ProgressBar(None, False, sys.stderr))
        records = [Record(i, line, Kind.LINE, "keyed") for i, line in enumerate(lines)]
        expected = expected_verdicts(records, self.rules)
        ledger = Ledger()
        reader, probe = OutputReader(self.settings, ledger), LagProbe(self.settings)
        deadline = time.monotonic() + self.config.settle_timeout_s
        try:
            while True:
                if self.earlier.crashed() is not None:
                    log = self.earlier.logs[-1]
                    raise ClusterError(f"the earlier broker's worker exited (log: {log})")
                if await probe.lag() == 0 and await self.earlier.ready(self._session()):
                    await reader.catch_up()
                    got = {line: verdict for line, (_, verdict) in ledger.latest.items()}
                    if got == expected:
                        break
                if time.monotonic() > deadline:
                    raise ClusterError("the earlier broker's worker did not decide its input")
                await asyncio.sleep(POLL_S)
        finally:
            await reader.close()
            await probe.close()
        await self.earlier.terminate()
        if not list(self.stale_dir.glob(f"*/{CLUSTER_ID_FILE}")):
            raise HarnessError(f"the earlier worker left no {CLUSTER_ID_FILE} in {self.stale_dir}")
        await self.broker.start(fresh=True)  # wiped: a new cluster on the same ports

    def _session(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def run_step(self, step: Step, records: list[Record]) -> Row:
        """Produce the step's records while its fault strikes; wait, verify; its row."""
        notes: list[str] = []
        struck: list[float] = []
        wall: list[str] = []
        faults: list[asyncio.Task[None]] = []

        def strike() -> None:
            struck.append(time.monotonic())
            wall.append(datetime.now(UTC).isoformat(timespec="milliseconds"))
            faults.append(asyncio.create_task(self.fault(step, notes)))

        at = 0 if step.fault is Fault.NONE else int(step.moment * len(records))
        crashes: Counter[str] = Counter()
        self.restart_crashed(crashes)
        resent = await feed(records, self.producers, self.config.rate, self.deliveries, at, strike)
        if resent:
            notes.append(f"{resent} sends repeated")
        for task in faults:
            await task  # a fault that could not be done ends the run
        self.produced.extend(records)
        expecting = asyncio.create_task(
            asyncio.to_thread(expected_verdicts, list(self.produced), self.rules)
        )
        found, recovery = await self.settle(struck[0], expecting, notes, crashes)
        notes += [
            f"worker {name} exited by itself {count} time(s) (see {self.workers[name].logs[-1]})"
            for name, count in sorted(crashes.items())
        ]
        if step.fault is Fault.STALE_STATE:
            seen = CLUSTER_CHANGE.search(self.workers["a"].log_tail(200_000))
            notes.append(
                "the worker discarded it (cluster change logged)"
                if seen
                else "no cluster change in the worker's log"
            )
        before = self.rows[-1].score if self.rows else None
        return Row(
            fault=step.label,
            kind=step.fault.value,
            lines=len(self.produced),
            step_lines=len(records),
            score=found,
            duplicates=found.duplicates - (before.duplicates if before else 0),
            replayed=found.replayed - (before.replayed if before else 0),
            recovery_s=recovery,
            crashes=sum(crashes.values()),
            notes=notes,
            struck_at=wall[0],
        )

    async def fault(self, step: Step, notes: list[str]) -> None:
        """Do the step's fault (and what brings the deployment back, but no waiting for it)."""
        fault = step.fault
        if fault is Fault.WORKER_KILL:
            running = [w for w in self.workers.values() if w.running]
            victim = self.rng.choice(running or [self.workers["a"]])
            victim.kill9()
            victim.start()
            notes.append(f"worker {victim.name} killed and restarted")
        elif fault is Fault.WORKER_JOIN:
            for worker in self.joiners():
                worker.start()
        elif fault is Fault.WORKER_LEAVE:
            await asyncio.gather(*(worker.terminate() for worker in self.joiners()))
        elif fault is Fault.BROKER_KILL:
            began = time.monotonic()
            await asyncio.to_thread(self.broker.kill9)
            await asyncio.sleep(BROKER_DOWN_S)
            await self.broker.start()
            notes.append(f"broker down {time.monotonic() - began:.1f} s")
        elif fault is Fault.STATE_DELETED:
            worker = self.workers["a"]
            worker.kill9()
            worker.wipe()
            worker.start()
            notes.append("worker a killed, its data dir deleted, restarted")
        elif fault is Fault.STALE_STATE:
            worker = self.workers["a"]
            await worker.terminate()
            worker.replace_state(self.stale_dir)
            worker.start()

    def joiners(self) -> list[Worker]:
        """The workers that join and leave: all but `a`."""
        return [worker for name, worker in self.workers.items() if name != "a"]

    def restart_crashed(self, crashes: Counter[str]) -> None:
        """Count every worker found exited by itself, and start it again (not more often than
        every RESTART_AFTER_S: a worker that cannot start must not turn into a fork loop)."""
        for worker in self.workers.values():
            if worker.crashed() is None:
                continue
            if not worker.crash_counted:
                worker.crash_counted = True
                crashes[worker.name] += 1
            if time.monotonic() - worker.started_at >= RESTART_AFTER_S:
                worker.start()

    async def settle(
        self,
        struck: float,
        expecting: asyncio.Task[dict[LineKey, Verdict]],
        notes: list[str],
        crashes: Counter[str],
    ) -> tuple[Score, float | None]:
        """Wait until caught up and correct; the score and the recovery time (None: not within
        the settle timeout, or caught up and still wrong after GRACE_S)."""
        deadline = struck + self.config.settle_timeout_s
        caught_up_at: float | None = None
        lag: int | None = None
        while True:
            self.restart_crashed(crashes)
            running = [w for w in self.workers.values() if w.running]
            ready = bool(running)
            for worker in running:
                ready = ready and await worker.ready(self._session())
            lag = await self.lag.lag() if ready else None
            with contextlib.suppress(Exception):  # the broker may still be away
                await self.reader.catch_up()
            now = time.monotonic()
            if ready and lag == 0 and await self._read_to_end():
                # Committed past everything, so every decision was delivered, and all is read.
                found = self.score(await expecting)
                if found.clean:
                    return found, round(time.monotonic() - struck, 1)
                caught_up_at = caught_up_at or now
                if now - caught_up_at >= GRACE_S:
                    notes.append(f"caught up, still not correct after {GRACE_S:.0f} s")
                    return found, None
            if now > deadline:
                notes.append(
                    f"not caught up {self.config.settle_timeout_s:.0f} s after the fault "
                    f"(ready: {ready}, lag: {lag})"
                )
                with contextlib.suppress(Exception):
                    await self.reader.catch_up()
                return self.score(await expecting), None
            await asyncio.sleep(POLL_S)

    async def _read_to_end(self) -> bool:
        """Read the output topics to their end offsets now; False when that failed."""
        try:
            await self.reader.catch_up()
        except Exception:  # a broker that is still coming back: the next poll reads again
            return False
        return True

    def score(self, expected: dict[LineKey, Verdict]) -> Score:
        """Everything produced so far against what was read."""
        invalid = self.deliveries.sources(valid=False)
        valid = set(self.deliveries.sources(valid=True))
        return score(len(self.produced), expected, self.ledger, invalid, valid)


# -- the command --------------------------------------------------------------------------------


def command_line(config: Config) -> str:
    """The command that repeats this run."""
    args = ["stream-edits", "chaos", "--lines", str(config.lines), "--seed", str(config.seed)]
    args += ["--partitions", str(config.partitions), "--faults", ",".join(config.kinds)]
    args += ["--kills", str(config.kills), "--workers", str(config.workers)]
    args += ["--rate", f"{config.rate:g}"]
    args += ["--time-limit", f"{config.time_limit_s:g}"]
    args += ["--settle-timeout", f"{config.settle_timeout_s:g}"]
    return shlex.join(args)


def versions(settings: Settings) -> dict[str, str]:
    """What the run ran on."""
    found = {"python": platform.python_version(), "kafka": settings.kafka_version}
    for package in ("stream-edits", "faust-streaming"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    found.update(producer_versions())
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
        found["java"] = (java.stderr or java.stdout).strip().splitlines()[0]
    repo = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode == 0:
            found["git_commit"] = head.stdout.strip()
    return found


def _terminate_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C does: the processes it started are stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


def run(settings: Settings, config: Config) -> int:
    """Run the suite; print the scoreboard (and write --json/--markdown); exit code."""
    began = time.monotonic()
    temporary = config.workdir is None
    workdir = (
        Path(tempfile.mkdtemp(prefix="stream-edits-chaos-"))
        if config.workdir is None
        else config.workdir
    )
    workdir.mkdir(parents=True, exist_ok=True)
    run_config = run_settings(settings, workdir, config.partitions)
    _terminate_on_sigterm()
    # The clients' connection errors while the broker is killed are the fault, not news.
    configure_logging(quiet={"aiokafka": logging.CRITICAL})
    _say(f"{command_line(config)}; broker on {run_config.bootstrap_servers}, files in {workdir}")
    chaos = Chaos(config, run_config, workdir)
    _say(
        f"{len(chaos.plan)} steps over {sum(len(r) for r in chaos.inputs):,} records "
        f"({config.lines:,} workload lines), producers: {', '.join(chaos.producers)}"
    )
    error: str | None = None
    try:
        asyncio.run(asyncio.wait_for(chaos.main(), config.time_limit_s))
    except TimeoutError:
        error = (
            f"time limit of {config.time_limit_s:.0f} s reached after {len(chaos.rows)} of "
            f"{len(chaos.plan)} steps"
        )
    except (ClusterError, HarnessError, DeliveryError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug of the suite: its trace, then the rows so far
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        chaos.stop_processes()
        if temporary and not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        chaos.stop_processes()
    elapsed = round(time.monotonic() - began, 1)
    meta: dict[str, Any] = {
        "command": command_line(config),
        "argv": sys.argv,
        "seed": config.seed,
        "config": {
            "lines": config.lines,
            "records": sum(len(r) for r in chaos.inputs),
            "partitions": config.partitions,
            "faults": config.kinds,
            "kills": config.kills,
            "rate": config.rate,
            "time_limit_s": config.time_limit_s,
            "settle_timeout_s": config.settle_timeout_s,
            "producers": list(chaos.producers),
            "processing_guarantee": run_config.processing_guarantee,
            "session_timeout_s": run_config.session_timeout_s,
            "broker_heap": run_config.kafka_heap,
        },
        "versions": versions(run_config),
        "machine": {"cpus": os.cpu_count(), "loadavg_after": list(os.getloadavg())},
        "elapsed_s": elapsed,
        "timings": chaos.timings,
        "steps_planned": len(chaos.plan),
        "error": error,
        "workdir": str(workdir),
    }
    report = document(chaos.rows, meta)
    kept = not temporary or config.keep or not report["ok"]
    report["workdir_kept"] = kept
    # Piped or captured, the table keeps its width (rich would otherwise wrap it at 80).
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(table(chaos.rows, title="stream-edits chaos"))
    for row in chaos.rows:
        for example in row.score.examples if not row.ok else ():
            console.print(f"  {row.fault}: {example}", markup=False, highlight=False)
    if error:
        console.print(f"error: {error}", style="bold red", markup=False)
    console.print(
        f"{'all rows clean' if report['ok'] else 'FAILED'}: {len(chaos.rows)} of "
        f"{len(chaos.plan)} steps in {elapsed:.0f} s; {report['command']}",
        markup=False,
        highlight=False,
    )
    if config.json is not None:
        config.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    if config.markdown is not None:
        config.markdown.write_text(markdown(chaos.rows))
    if not kept:
        shutil.rmtree(workdir, ignore_errors=True)
    else:  # a failed run's broker data, state and logs are what a post-mortem needs
        _say(f"files kept in {workdir}")
    return 0 if report["ok"] else 1
