"""`stream-edits bench`: the processor against the client's and the framework's ceilings, one run.

Three pipelines, each with fresh topics of `settings.partitions` partitions on the same broker and
each in its own process: (a) raw aiokafka consume → orjson.loads → produce, (b) a Faust
pass-through agent with default settings, (c) the real processor (`stream-edits worker`). Each
first drains a pre-produced backlog of `--lines` lines (sustained lines/s), then gets lines at
each offered rate for `--latency-seconds` (end-to-end latency percentiles). `check` throughput and
state bytes per patient-day are measured offline over the same backlog.

Writes `<out>/bench.json`, `<out>/latency.png` and the pipelines' logs in `<out>/logs/`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from stream_edits.jobs.produce import member_key
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.refusal import Refused
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings
from stream_edits_dev.bench import (
    cms_rules,
    measure,
    offline,
    profiling,
    replay_drain,
    report,
    worker_start,
)
from stream_edits_dev.bench.options import BenchOptions
from stream_edits_dev.bench.workload import generate

PIPELINES = ("raw", "faust", "processor", "unkeyed", "two_workers", "baseline")
LABELS = {
    "raw": "(a) raw aiokafka",
    "faust": "(b) Faust pass-through",
    "processor": "(c) stream-edits processor",
    "unkeyed": "(d) processor, unkeyed input",
    "two_workers": "(f) processor, two workers",
    "baseline": "(c0) processor, baseline source",
}
WORKERS = {"two_workers": 2}  # worker processes of a processor pipeline (one unless named)
TARGETS = {"processor_vs_faust": 2.0, "processor_vs_raw": 0.25, "processor_p99_ms_at_5000": 30.0}
METHOD = [
    "Each pipeline runs in its own process with fresh topics; this process only produces input "
    "and consumes output with aiokafka.",
    "Drain lines/s: input lines consumed per second while draining the pre-produced backlog, "
    "from the first output's CreateTime to the output that completes the count. A partition is "
    "processed in order, so an output for input offset o proves every line up to o in that "
    "partition consumed (the processor publishes nothing for some lines, e.g. a void of an "
    "already retracted claim). Pipeline start-up is excluded (first_output_after_s).",
    "The processor's outputs are mapped back to input lines through `source` (partition, "
    "offset) in decisions and dead letters; the pass-through pipelines forward a header "
    "holding the line's index.",
    "Latency: from this process's producer.send call to this process fetching the line's first "
    "output. Lines the processor answers with nothing are not expected; lines not answered "
    "within the settle timeout count as missing, not in the percentiles. During a paced run "
    "this process's own garbage collector is off (its heap frozen before): its collections "
    "paused the producer and the collector for 100-200 ms every few seconds.",
    "(d) is (c) fed the same lines without keys: the producer spreads them over the "
    "partitions, and the processor forwards each line not on its member's partition through "
    "its repartition topic (3 of 4 lines with 4 partitions).",
    "(e) replay: `stream-edits replay` over the same backlog produced to a topic of its own, "
    "lines/s as it reports them (first read to last decision delivered; start-up excluded).",
    "(f) is (c) run as two worker processes of one group (the partitions split between them, "
    "one per core): the drain and latency of one worker against two, in one run. Its workers "
    "start first and its backlog is produced once both are ready (a worker joining mid-drain "
    "would make the drain measure a rebalance); the produce rate is reported beside.",
    "(c0), with --baseline-src: (c) with its code from another source tree, for a before / "
    "after comparison in one run.",
    "Stages: each processor worker's stream_edits_batch_stage_seconds histograms, read from its "
    "/metrics before and after the drain and each paced run: per batch, the time of its oldest "
    "record from its timestamp to the inbox (fetch), waiting there (inbox), deciding (engine), "
    "encoding member records (encode), outputs and state sent until acknowledged (outputs, "
    "changelog), the local store (store), and Faust's periodic commit (commit). Percentiles are "
    "interpolated within histogram buckets.",
    "check: stream_edits.jobs.check.final_decisions over the backlog, one pass, in this process.",
    "State: orjson wire bytes of every ClaimEntry and DayState after the engine ran over the "
    "backlog, per distinct (member_id, date_of_service); also as stored (one MemberRecord per "
    "member, plus its key).",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--processor-env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def _pipeline(
    name: str, settings: Settings, run_id: str, data_dir: Path, options: BenchOptions
) -> measure.Pipeline:
    source, sink = f"{run_id}-{name}-in", f"{run_id}-{name}-out"
    module = [sys.executable, "-m", "stream_edits_dev.bench.pipelines"]
    common = ["--bootstrap", settings.bootstrap_servers, "--source", source, "--sink", sink]
    env = dict(os.environ)
    if name == "raw":
        command = [*module, "raw", *common, "--group", f"{run_id}-raw"]
        return measure.Pipeline(name, LABELS[name], source, (sink,), command, env, stamped=True)
    if name == "faust":
        app_id = f"{run_id}-faust"
        command = [*module, "faust", *common, "--group", app_id]
        command += ["--datadir", str(data_dir / name), "--web-port", str(_free_port())]
        return measure.Pipeline(
            name, LABELS[name], source, (sink,), command, env, stamped=True, app_id=app_id
        )
    app_id = f"{run_id}-{name}"
    processor_settings = settings.model_copy(
        update={
            "input_topic": source,
            "output_topic": sink,
            "dlq_topic": f"{run_id}-{name}-dlq",
            "app_id": app_id,
            "data_dir": data_dir / name,
            "store": options.store or settings.store,
            "web_port": _free_port(),
        }
    )
    for field in ("bootstrap_servers", "partitions", "input_topic", "output_topic", "dlq_topic",
                  "app_id", "data_dir", "store", "web_port"):  # fmt: skip
        env[f"STREAM_EDITS_{field.upper()}"] = str(getattr(processor_settings, field))
    env.update(_parse_env(options.processor_env))
    command = [sys.executable, "-m", "stream_edits", "worker", "--loglevel", "warning"]
    if name == "baseline" and options.baseline_src is not None:  # its code from another tree
        launcher = [sys.executable, "-m", "stream_edits_dev.bench.from_tree"]
        command = [*launcher, str(options.baseline_src.resolve()), *command[3:]]
    worker_envs: tuple[dict[str, str], ...] = ()
    web_ports: tuple[int, ...] = (processor_settings.web_port,)
    if WORKERS.get(name, 1) > 1:  # each worker a state directory and web port of its own
        web_ports += tuple(_free_port() for _ in range(WORKERS[name] - 1))
        data_dirs = [processor_settings.data_dir / f"worker-{n}" for n in range(len(web_ports))]
        for folder in data_dirs:
            folder.mkdir(parents=True, exist_ok=True)
        worker_envs = tuple(
            {"STREAM_EDITS_WEB_PORT": str(port), "STREAM_EDITS_DATA_DIR": str(folder)}
            for port, folder in zip(web_ports, data_dirs, strict=True)
        )
    return measure.Pipeline(
        name,
        LABELS[name],
        source,
        (processor_settings.output_topic, processor_settings.dlq_topic),
        command,
        env,
        stamped=False,
        settings=processor_settings,
        app_id=app_id,
        keyed=name != "unkeyed",
        worker_envs=worker_envs,
        web_ports=web_ports,
    )


def _profiled(options: BenchOptions) -> set[str]:
    return {p.strip() for p in (options.profile or "").split(",") if p.strip()}


def _throughput(results: dict[str, Any], name: str) -> float | None:
    result = results.get(name)
    if result is None or "throughput" not in result:
        return None
    value: float = result["throughput"]["lines_per_s"]
    return value


async def _measure_all(
    settings: Settings,
    options: BenchOptions,
    names: list[str],
    workload: measure.Workload,
    out: Path,
) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    profiled = _profiled(options)
    results: dict[str, Any] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="stream-edits-bench-") as tmp:
        for name in names:
            pipeline = _pipeline(name, settings, run_id, Path(tmp), options)
            run_options = measure.Options(
                partitions=settings.partitions,
                drain_timeout_s=60 + options.lines / 1000,
                settle_timeout_s=max(10.0, 2 * options.latency_seconds),
                log_dir=out / "logs",
                quiet_s=options.quiet_seconds,
                profile=name in profiled,
                keep_topics=options.keep_topics,
            )
            _say(f"{pipeline.label}: backlog of {options.lines:,} lines, then paced runs")
            try:
                result = await measure.Run(settings, pipeline, workload, run_options).measure()
            except measure.BenchError as error:
                _say(f"{name} failed: {error}")
                results[name] = {"label": pipeline.label, "error": str(error)}
                continue
            samples[name] = result.pop("samples_ms")
            results[name] = result
            _say(f"{name}: {result['throughput']['lines_per_s']:,.0f} lines/s")
    return results, samples


def _arguments_error(options: BenchOptions) -> str | None:
    """What is wrong with the bench arguments, or None."""
    try:
        rates = [int(r) for r in str(options.rates).split(",") if r.strip()]
        _parse_env(options.processor_env)
    except ValueError as error:
        return str(error)
    names = _names(options)
    if options.baseline_src is None and "baseline" in names:
        return "the baseline pipeline needs --baseline-src"
    if options.baseline_src is not None and not (options.baseline_src / "stream_edits").is_dir():
        return f"--baseline-src {options.baseline_src}: no stream_edits package there"
    if not rates or any(r <= 0 for r in rates) or options.lines < 1 or options.latency_seconds <= 0:
        return "--lines, --rates and --latency-seconds must be positive"
    if not names or any(n not in PIPELINES for n in names):
        return f"--pipelines takes names from {','.join(PIPELINES)}"
    return None


def _names(options: BenchOptions) -> list[str]:
    """The pipelines to run, the baseline beside the processor when --baseline-src is given."""
    names = [n.strip() for n in str(options.pipelines).split(",") if n.strip()]
    if options.baseline_src is not None and "baseline" not in names:
        names.insert(names.index("processor") if "processor" in names else len(names), "baseline")
    return names


def _workload(
    settings: Settings, options: BenchOptions, rates: list[int]
) -> tuple[measure.Workload, offline.CheckResult, offline.StateSize]:
    """The lines (backlog, then one slice per rate), and the offline measurements over them."""
    phases, start = [], options.lines
    for rate in rates:
        count = max(1, round(rate * options.latency_seconds))
        phases.append(measure.Phase(rate, start, count))
        start += count
    _say(f"generating {start:,} lines (seed {options.seed})")
    lines = generate(start, seed=options.seed)
    keys = [member_key(line) for line in lines]
    rules = load_rules(settings.rules_dir, settings.rules_cache_dir)
    _say("offline: check throughput and state size")
    check = offline.time_check(lines[: options.lines], rules)
    answered, state = offline.simulate(lines, rules, options.lines)
    return measure.Workload(lines, keys, options.lines, phases, answered), check, state


def _targets(results: dict[str, Any], ratios: dict[str, float | None]) -> dict[str, Any]:
    p99 = results.get("processor", {}).get("latency", {}).get("5000", {}).get("p99_ms")
    return {
        **TARGETS,
        "met": {
            "processor_vs_faust": (ratios["processor_vs_faust"] or 0)
            >= TARGETS["processor_vs_faust"],
            "processor_vs_raw": (ratios["processor_vs_raw"] or 0) >= TARGETS["processor_vs_raw"],
            "processor_p99_ms_at_5000": p99 is not None
            and p99 < TARGETS["processor_p99_ms_at_5000"],
        },
    }


def run(settings: Settings, options: BenchOptions) -> int:
    """Run the bench; print the table; write bench.json and latency.png. Exit 0, 1 when no broker
    answers; Refused when the options do not fit together."""
    from stream_edits_dev.broker.local import broker_answers

    started = time.perf_counter()
    problem = _arguments_error(options)
    if problem is not None:
        raise Refused(problem)
    rates = [int(r) for r in str(options.rates).split(",") if r.strip()]
    names = _names(options)
    client = kafka_client_kwargs(settings)  # its security settings
    if broker_answers(settings.bootstrap_servers, 10.0, client) is None:
        print(
            f"stream-edits bench: no broker at {settings.bootstrap_servers}: "
            "`stream-edits kafka start`",
            file=sys.stderr,
        )
        return 1
    out: Path = options.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    machine = report.machine_info(settings)
    workload, check, state = _workload(settings, options, rates)

    results, samples = asyncio.run(_measure_all(settings, options, names, workload, out))
    replay: dict[str, Any] | None = None
    if "processor" in names:
        _say(
            f"(e) replay: the same backlog of {options.lines:,} lines through `stream-edits replay`"
        )
        try:
            run_id = f"bench-{uuid.uuid4().hex[:10]}"
            replay = asyncio.run(replay_drain.measure_replay(settings, workload, run_id))
        except measure.BenchError as error:
            _say(f"replay failed: {error}")

    raw, faust, processor, unkeyed, two_workers, baseline = (
        _throughput(results, n) for n in PIPELINES
    )
    ratios = {
        "processor_vs_raw": report.ratio(processor, raw),
        "processor_vs_faust": report.ratio(processor, faust),
        "faust_vs_raw": report.ratio(faust, raw),
        "unkeyed_vs_processor": report.ratio(unkeyed, processor),
        "replay_vs_processor": report.ratio(replay["lines_per_s"] if replay else None, processor),
        "two_workers_vs_one": report.ratio(two_workers, processor),
        "processor_vs_baseline": report.ratio(processor, baseline),
    }
    machine["loadavg_after"] = list(os.getloadavg())
    data: dict[str, Any] = {
        "config": {
            "lines": options.lines,
            "rates": rates,
            "latency_seconds": options.latency_seconds,
            "quiet_seconds": options.quiet_seconds,
            "partitions": settings.partitions,
            "processor_store": options.store or settings.store,
            "processor_env": _parse_env(options.processor_env),
            "baseline_src": str(options.baseline_src) if options.baseline_src else None,
            "seed": options.seed,
            "bootstrap_servers": settings.bootstrap_servers,
        },
        "machine": machine,
        "pipelines": results,
        "replay": replay,
        "ratios": ratios,
        "check": {
            "lines": check.lines,
            "decisions": check.decisions,
            "seconds": round(check.seconds, 3),
            "lines_per_s": round(check.lines_per_s, 1),
        },
        "state": state.as_dict(),
        "targets": _targets(results, ratios),
        "method": METHOD,
    }
    for name in _profiled(options) & set(results):
        for phase in ["drain", *(str(rate) for rate in rates)]:
            path = out / f"profile-{name}-{phase}.txt"
            if path.is_file():
                profiles = data.setdefault("profiles", {}).setdefault(name, {})
                profiles[phase] = profiling.summary(path.read_text())
    if options.cms_rules is not None:
        _say(f"CMS-sized rules from {options.cms_rules}: load, memory, check throughput")
        # At least 20,000 lines: shorter check runs are mostly the machine's noise.
        check_lines = generate(max(options.lines, 20_000), seed=options.seed)
        data["cms_rules"] = cms_rules.measure(options.cms_rules, check_lines)
        _say("worker start to ready: shipped and CMS-sized rules, alternated")
        try:
            data["cms_rules"]["worker_start"] = asyncio.run(
                worker_start.compare(settings, options.cms_rules, settings.rules_cache_dir)
            )
        except RuntimeError as error:
            _say(f"worker start failed: {error}")
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    report.write_json(data, out / "bench.json")
    report.plot_latency(samples, LABELS, out / "latency.png")
    print(report.format_table(data))
    for name, by_phase in data.get("profiles", {}).items():
        for phase, summary in by_phase.items():
            what = "draining the backlog" if phase == "drain" else f"at {phase} lines/s"
            print(f"\nprofile of {name} {what}:")
            print(profiling.format_summary(summary))
    print(f"\nwrote {out / 'bench.json'} and {out / 'latency.png'} in {data['elapsed_s']} s")
    return 1 if any("error" in r for r in results.values()) else 0
