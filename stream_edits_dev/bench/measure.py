"""The measuring process: topics, the backlog and paced producers, the output collector, numbers.

A pipeline under test runs in a subprocess; this process only produces its input and consumes its
output with aiokafka, so the two never share an event loop. Every input line carries its index in
the workload in a header; the pass-through pipelines forward it, and the processor's decisions and
dead letters name their input's (partition, offset) in `source`, which the producer's record
metadata maps back to the index.

Throughput is read from the output records' CreateTime stamps (set by the pipeline's producer when
it hands over each output), not from when this process happens to fetch them, so a slow collector
cannot lower it. Latency is from this process's send call to its first fetch of the first output
of the line, both on this process's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_edits.gc_pause import freeze_long_lived, gc_paused
from stream_edits.kafka.admin import create_topics
from stream_edits.kafka.preflight import changelog_topic
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings
from stream_edits_dev.bench.stages import Histograms, breakdown, scrape

INDEX_HEADER = "bench-line"
POLL_S = 0.05
STOP_TIMEOUT_S = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A pipeline could not be measured (it died, or never answered in time)."""


@dataclass(frozen=True)
class Phase:
    """A paced run: `count` lines from `start` in the workload, offered at `rate` lines/s."""

    rate: int
    start: int
    count: int


@dataclass
class Workload:
    """The lines every pipeline gets, in the same order: the backlog first, then each phase."""

    lines: list[bytes]
    keys: list[bytes | None]
    backlog: int
    phases: list[Phase]
    answered: bytearray  # 1 where the processor publishes something for the line


@dataclass
class Pipeline:
    """One pipeline under test: its topics, its process and how its outputs name their input."""

    name: str
    label: str
    source: str
    sinks: tuple[str, ...]
    command: list[str]
    env: dict[str, str]
    stamped: bool  # True: outputs forward the index header; False: they carry JSON `source`
    settings: Settings | None = None  # the processor's: topics created from the contract
    app_id: str | None = None  # Faust apps create internal topics named after it
    keyed: bool = True  # False: the lines are sent without keys (spread over the partitions)
    # One process per entry, each with `env` and these overrides (one process when empty).
    worker_envs: tuple[dict[str, str], ...] = ()
    web_ports: tuple[int, ...] = ()  # the processor's workers' web ports (stage histograms)


@dataclass
class Options:
    """How long to wait, where to log, and whether to profile."""

    partitions: int
    drain_timeout_s: float
    settle_timeout_s: float
    log_dir: Path
    quiet_s: float = 3.0  # idle time before each paced run: latency is measured in steady state
    profile: bool = False
    keep_topics: bool = False


@dataclass
class Collector:
    """Consumes a pipeline's outputs; keeps the first output of every input line."""

    consumer: AIOKafkaConsumer
    stamped: bool
    by_index: dict[int, tuple[int, int]] = field(default_factory=dict)  # (CreateTime ms, recv ns)
    by_source: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    outputs: int = 0

    @property
    def answered(self) -> int:
        """Distinct input lines with at least one output so far."""
        return len(self.by_index) + len(self.by_source)

    async def run(self) -> None:
        """Fetch until cancelled."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            received = time.perf_counter_ns()
            for records in batches.values():
                self.outputs += len(records)
                for record in records:
                    seen = (record.timestamp, received)
                    if self.stamped:
                        index = _header_index(record.headers)
                        if index is not None and index not in self.by_index:
                            self.by_index[index] = seen
                        continue
                    key = _source_position(record.value, record.headers)
                    if key is not None and key not in self.by_source:
                        self.by_source[key] = seen

    def first(self, index: int, position: tuple[int, int] | None) -> tuple[int, int] | None:
        """(CreateTime ms, recv ns) of line `index`'s first output, or None."""
        if self.stamped:
            return self.by_index.get(index)
        return None if position is None else self.by_source.get(position)


def _source_position(
    value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> tuple[int, int] | None:
    """The input (partition, offset) an output record answers: a decision's `source`, or a dead
    letter's (or an `unresolved_reference` notice's) Connect headers."""
    named = dict(headers)
    if "__connect.errors.offset" in named:
        return int(named["__connect.errors.partition"]), int(named["__connect.errors.offset"])
    source = orjson.loads(value or b"{}").get("source")
    return None if source is None else (source["partition"], source["offset"])


def _header_index(headers: Sequence[tuple[str, bytes]]) -> int | None:
    for name, value in headers:
        if name == INDEX_HEADER:
            return int.from_bytes(value, "big")
    return None


def ready(port: int, host: str = "127.0.0.1") -> bool:
    """True when the worker at `port` answers /health/ with 200."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health/", timeout=1.0) as response:
            return bool(response.status == 200)
    except OSError:  # refused, not ready yet (503 raises HTTPError, an OSError)
        return False


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def drain_rate(
    points: list[tuple[int, int, int]], bases: dict[int, int], state_ms: int | None = None
) -> dict[str, Any]:
    """Sustained lines/s from (CreateTime ms, partition, offset) of each line's first output.

    A partition is processed in order, so once an output of offset o is out, every line up to
    o in that partition has been consumed (lines that publish nothing included). The count of
    lines done at time t is summed over partitions; the rate runs from the end of the first
    batch to the output that completed the count, so start-up is not in it. The first batch
    ends at its first output, or at its first state record (`state_ms`, the changelog's first
    CreateTime) when that came first: the processor publishes a batch once its state is
    stored, and deciding the next batches goes on meanwhile. Either way the lines done at the
    first output are not counted.
    """
    points.sort()
    done_to = {p: base - 1 for p, base in bases.items()}
    progress = 0
    first_ms = points[0][0] if points else 0
    at_first = 0
    end_ms, end_progress = first_ms, 0
    for ms, partition, offset in points:
        if offset > done_to[partition]:
            progress += offset - done_to[partition]
            done_to[partition] = offset
            end_ms, end_progress = ms, progress
        if ms == first_ms:
            at_first = progress
    started_ms = first_ms if state_ms is None else min(first_ms, state_ms)
    seconds = max(end_ms - started_ms, 1) / 1000
    lines = end_progress - at_first if end_progress > at_first else end_progress
    return {
        "lines_per_s": round(lines / seconds, 1),
        "lines_timed": lines,
        "seconds": round(seconds, 3),
        "lines_done": end_progress,
    }


def latency_stats(samples_ms: list[float], expected: int) -> dict[str, Any]:
    """Percentiles over the answered lines; lines never answered are counted as `missing`."""
    samples_ms.sort()
    out: dict[str, Any] = {"expected": expected, "answered": len(samples_ms)}
    out["missing"] = expected - len(samples_ms)
    for q in (50, 95, 99):
        out[f"p{q}_ms"] = round(percentile(samples_ms, q), 2) if samples_ms else None
    out["max_ms"] = round(samples_ms[-1], 2) if samples_ms else None
    out["mean_ms"] = round(sum(samples_ms) / len(samples_ms), 2) if samples_ms else None
    return out


def cpu_seconds(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process (all threads) so far, from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


async def _create_plain_topics(settings: Settings, names: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def wait_for_leaders(settings: Settings, names: Sequence[str], timeout_s: float = 15) -> None:
    """Wait until every partition of `names` has a leader.

    A new topic is visible before its partitions have leaders; producing or fetching offsets
    then fails with NotLeaderForPartition and is retried, which would add noise to the run.
    """
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            described = await admin.describe_topics(list(names))
            ready = len(described) == len(names) and all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
            if ready:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"topics without leaders after {timeout_s:.0f} s: {names}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: Sequence[str], prefixes: Sequence[str]) -> None:
    """Delete the named topics and every topic starting with one of `prefixes`."""
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in existing if t in names or any(t.startswith(p) for p in prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


class Run:
    """One pipeline's measurement: topics, backlog, process, drain, paced phases, clean-up."""

    def __init__(
        self, settings: Settings, pipeline: Pipeline, workload: Workload, options: Options
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.workload = workload
        self.options = options
        size = len(workload.lines)
        self.positions: list[tuple[int, int] | None] = [None] * size
        self.sent_ns = [0] * size
        self.processes: list[asyncio.subprocess.Process] = []
        self.collector: Collector | None = None
        self.profiler: asyncio.subprocess.Process | None = None

    async def measure(self) -> dict[str, Any]:
        """Run every step; always stop the process and delete the topics."""
        pipeline = self.pipeline
        if pipeline.settings is not None:
            await create_topics(pipeline.settings)
        else:
            await _create_plain_topics(
                self.settings, [pipeline.source, *pipeline.sinks], self.options.partitions
            )
        await wait_for_leaders(self.settings, [pipeline.source, *pipeline.sinks])
        client = kafka_client_kwargs(self.settings)
        producer = AIOKafkaProducer(**client, linger_ms=0, max_batch_size=256 * 1024)
        consumer = AIOKafkaConsumer(
            **client,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await producer.start()
        await consumer.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in pipeline.sinks
            for p in range(self.options.partitions)
        ]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)  # fresh topics: no offset look-up needed
        self.collector = Collector(consumer, pipeline.stamped)
        collecting = asyncio.create_task(self.collector.run())
        try:
            return await self._steps(producer)
        finally:
            collecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collecting
            await self._stop_profiler()
            await self._stop_process()
            await consumer.stop()
            await producer.stop()
            if not self.options.keep_topics:
                prefixes = [f"{pipeline.app_id}-"] if pipeline.app_id else []
                await delete_topics(self.settings, [pipeline.source, *pipeline.sinks], prefixes)

    async def _steps(self, producer: AIOKafkaProducer) -> dict[str, Any]:
        workload, collector = self.workload, self.collector
        assert collector is not None
        backlog = range(workload.backlog)
        # Several workers split the partitions only once all have joined the group: one joining
        # while the others drain would make the drain measure a rebalance. They start first and
        # the backlog follows once each is ready (its produce rate is reported beside).
        group_first = len(self.pipeline.worker_envs) > 1
        if not group_first:
            await self._produce(producer, backlog, rate=None)
        started = time.perf_counter()
        for n, overrides in enumerate(self.pipeline.worker_envs or ({},)):
            suffix = f"-{n + 1}" if n else ""
            log_path = self.options.log_dir / f"{self.pipeline.name}{suffix}.log"
            with open(log_path, "wb") as log:
                process = await asyncio.create_subprocess_exec(
                    *self.pipeline.command,
                    env={**self.pipeline.env, **overrides},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.processes.append(process)
        pid = self.processes[0].pid
        produced_per_s = None
        if group_first:
            await self._wait(self._all_ready, self.options.drain_timeout_s, "ready workers")
            produced_per_s = await self._produce(producer, backlog, rate=None)
        expected_backlog = self._expected(backlog)
        stages_before = await self._stages()
        # CPU read at every poll until the first output: the drain's CPU is counted from the
        # first batch's end, which for the processor is its first state record (see drain_rate).
        cpu_samples: list[tuple[float, float, tuple[float, float] | None, int]] = []

        def first_output() -> bool:
            cpu_samples.append(
                (time.time() * 1000, time.perf_counter(), self._cpu(), collector.answered)
            )
            return collector.answered >= 1

        await self._wait(first_output, self.options.drain_timeout_s, "output")
        first_output_s = time.perf_counter() - started
        cpu_samples.append(
            (time.time() * 1000, time.perf_counter(), self._cpu(), collector.answered)
        )
        await self._start_profiler(pid, "drain")
        await self._wait(
            self._answered(expected_backlog),
            self.options.drain_timeout_s,
            f"{expected_backlog} answered lines",
            soft=True,
        )
        cpu_end, cpu_end_clock = self._cpu(), time.perf_counter()
        await self._stop_profiler()
        state_ms = await self._first_state_ms()
        _, cpu_clock, cpu_start, answered_at_cpu_start = cpu_samples[-1]
        if state_ms is not None:
            earlier = [sample for sample in cpu_samples if sample[0] <= state_ms]
            if earlier:
                _, cpu_clock, cpu_start, answered_at_cpu_start = earlier[-1]
        cpu_wall = cpu_end_clock - cpu_clock
        stages: dict[str, Any] = {}
        if self.pipeline.web_ports:
            after = await self._stages()
            stages["drain"] = breakdown(stages_before, after)
        throughput = self._throughput(backlog, state_ms)
        throughput["first_output_after_s"] = round(first_output_s, 2)
        if produced_per_s is not None:
            throughput["backlog_produced_per_s"] = round(produced_per_s, 1)
        throughput["expected_answered"] = expected_backlog
        throughput["answered"] = collector.answered
        throughput["outputs"] = collector.outputs
        if cpu_start is not None and cpu_end is not None and cpu_wall > 0:
            # Of one core, over the drain: user (Python) and system (mostly socket I/O) time.
            user, system = (
                (end - start) / cpu_wall for start, end in zip(cpu_start, cpu_end, strict=True)
            )
            throughput["pipeline_cpu_user_percent"] = round(100 * user, 1)
            throughput["pipeline_cpu_system_percent"] = round(100 * system, 1)
            # CPU per line hardly depends on what else the machine runs, unlike lines/s.
            drained = collector.answered - answered_at_cpu_start
            if drained > 0:
                per_line = (user + system) * cpu_wall / drained
                throughput["pipeline_cpu_us_per_line"] = round(1e6 * per_line, 1)
        latency: dict[str, Any] = {}
        samples: dict[str, list[float]] = {}
        target = expected_backlog
        for phase in workload.phases:
            lines = range(phase.start, phase.start + phase.count)
            # Not in the wake of the backlog (the pipeline's last commits and state writes, the
            # broker's): every pipeline gets the same quiet time before its paced runs.
            await asyncio.sleep(self.options.quiet_s)
            stages_before = await self._stages()
            await self._start_profiler(pid, str(phase.rate))
            cpu_start = self._cpu()
            # This process keeps the whole workload and every answer in memory: a collection
            # of it paused the producer and the collector for 100-200 ms every few seconds,
            # which read as latency of whichever pipeline was measured. Frozen and paused, the
            # paced run makes no cycles to collect (reference counting frees what it drops).
            freeze_long_lived()
            with gc_paused():
                offered = await self._produce(producer, lines, rate=phase.rate)
                target += self._expected(lines)
                await self._wait(
                    self._answered(target),
                    self.options.settle_timeout_s,
                    "paced lines",
                    soft=True,
                )
            cpu_end = self._cpu()
            await self._stop_profiler()
            if self.pipeline.web_ports:
                stages[str(phase.rate)] = breakdown(stages_before, await self._stages())
            values = self._latencies(lines)
            stats = latency_stats(values, self._expected(lines))
            stats["offered_per_s"] = phase.rate
            stats["achieved_per_s"] = round(offered, 1)
            if cpu_start is not None and cpu_end is not None and values:
                # The pipeline's CPU (user + system, every process) per line it answered: at a
                # paced rate its batches are small, and what each batch costs shows here.
                seconds = sum(cpu_end) - sum(cpu_start)
                stats["cpu_us_per_line"] = round(1e6 * seconds / len(values), 1)
            latency[str(phase.rate)] = stats
            samples[str(phase.rate)] = values
        result = {
            "label": self.pipeline.label,
            "workers": len(self.processes),
            "throughput": throughput,
            "latency": latency,
            "samples_ms": samples,
        }
        if stages:
            result["stages"] = stages
        return result

    def _cpu(self) -> tuple[float, float] | None:
        """(user, system) CPU seconds of every process of the pipeline so far."""
        each = [cpu_seconds(process.pid) for process in self.processes]
        if any(times is None for times in each):
            return None
        return sum(t[0] for t in each if t), sum(t[1] for t in each if t)

    async def _stages(self) -> Histograms:
        """The stage histograms of every worker, added up."""
        total: Histograms = {}
        for port in self.pipeline.web_ports:
            for stage, (bounds, counts, seconds) in (await scrape(port)).items():
                if stage in total and total[stage][0] == bounds:
                    _, before, before_s = total[stage]
                    counts = [a + b for a, b in zip(counts, before, strict=True)]
                    seconds += before_s
                total[stage] = (bounds, counts, seconds)
        return total

    def _all_ready(self) -> bool:
        """Every worker answers /health/ with 200 (holds partitions, recovered)."""
        return all(ready(port) for port in self.pipeline.web_ports)

    def _answered(self, count: int) -> Callable[[], bool]:
        collector = self.collector
        assert collector is not None
        return lambda: collector.answered >= count

    def _expected(self, lines: range) -> int:
        if self.pipeline.stamped:
            return len(lines)
        return sum(self.workload.answered[lines.start : lines.stop])

    async def _produce(self, producer: AIOKafkaProducer, lines: range, rate: float | None) -> float:
        """Send `lines` (paced at `rate` lines/s when given); record positions. Returns lines/s."""
        workload = self.workload
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        start = time.perf_counter()
        for n, index in enumerate(lines):
            if rate is not None:
                delay = start + n / rate - time.perf_counter()
                if delay > 0.001:
                    await asyncio.sleep(delay)
            self.sent_ns[index] = time.perf_counter_ns()
            future = await producer.send(
                self.pipeline.source,
                workload.lines[index],
                key=workload.keys[index] if self.pipeline.keyed else None,
                headers=[(INDEX_HEADER, index.to_bytes(4, "big"))],
            )
            futures.append((index, future))
        elapsed = time.perf_counter() - start
        for index, future in futures:
            metadata = await future
            self.positions[index] = (metadata.partition, metadata.offset)
        return len(lines) / elapsed if elapsed > 0 else 0.0

    async def _first_state_ms(self) -> int | None:
        """CreateTime of the first record on the processor's member changelog (None: no
        changelog, or nothing on it)."""
        if self.pipeline.settings is None:
            return None
        topic = changelog_topic(self.pipeline.settings)
        consumer = AIOKafkaConsumer(**kafka_client_kwargs(self.settings), enable_auto_commit=False)
        await consumer.start()
        try:
            if topic not in await consumer.topics():
                return None
            stamps = []
            # Co-partitioned with the input, as Faust creates a table's changelog.
            for partition in range(self.pipeline.settings.partitions):
                tp = TopicPartition(topic, partition)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                fetched = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
                stamps += [records[0].timestamp for records in fetched.values() if records]
            return min(stamps) if stamps else None
        finally:
            await consumer.stop()

    def _throughput(self, lines: range, state_ms: int | None = None) -> dict[str, Any]:
        collector = self.collector
        assert collector is not None
        bases: dict[int, int] = {}
        points: list[tuple[int, int, int]] = []
        for index in lines:
            position = self.positions[index]
            assert position is not None
            partition, offset = position
            bases[partition] = min(bases.get(partition, offset), offset)
            first = collector.first(index, position)
            if first is not None:
                points.append((first[0], partition, offset))
        return drain_rate(points, bases, state_ms)

    def _latencies(self, lines: range) -> list[float]:
        collector = self.collector
        assert collector is not None
        values: list[float] = []
        for index in lines:
            first = collector.first(index, self.positions[index])
            if first is not None:
                values.append((first[1] - self.sent_ns[index]) / 1e6)
        return values

    async def _wait(
        self, done: Callable[[], bool], timeout_s: float, what: str, soft: bool = False
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            for process in self.processes:
                if process.returncode is not None:
                    raise BenchError(
                        f"{self.pipeline.name} exited with {process.returncode}: see "
                        f"{self.options.log_dir / (self.pipeline.name + '*.log')}"
                    )
            if time.monotonic() > deadline:
                if soft:
                    return
                raise BenchError(f"{self.pipeline.name}: no {what} after {timeout_s:.0f} s")
            await asyncio.sleep(POLL_S)

    async def _stop_process(self) -> None:
        processes, self.processes = self.processes, []
        running = [process for process in processes if process.returncode is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()

    def profile_path(self, phase: str) -> Path:
        """Where py-spy writes the raw profile of `phase` ("drain" or an offered rate)."""
        return self.options.log_dir.parent / f"profile-{self.pipeline.name}-{phase}.txt"

    async def _start_profiler(self, pid: int, phase: str) -> None:
        if not self.options.profile:
            return
        out = self.profile_path(phase)
        beside = Path(sys.executable).parent / "py-spy"
        executable = str(beside) if beside.exists() else shutil.which("py-spy")
        if executable is None:
            raise BenchError("--profile needs py-spy: pip install py-spy")
        # Every thread, idle ones too, so shares are of wall time per thread. Non-blocking:
        # pausing the process for each sample (py-spy's default) inflated the socket sends to
        # half the main thread's time here, against 5-7% system CPU by /proc.
        command = [executable, "record", "--pid", str(pid), "--rate", "200", "--threads"]
        command += ["--idle", "--nonblocking", "--format", "raw", "--output", str(out)]
        self.profiler = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def _stop_profiler(self) -> None:
        profiler, self.profiler = self.profiler, None
        if profiler is None or profiler.returncode is not None:
            return
        profiler.send_signal(signal.SIGINT)  # SIGINT: py-spy writes its file and exits
        try:
            await asyncio.wait_for(profiler.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            profiler.kill()
            await profiler.wait()
