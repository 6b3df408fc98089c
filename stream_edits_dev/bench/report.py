"""The benchmark's report: machine facts, the printed table, bench.json and latency.png."""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from stream_edits.settings import Settings
from stream_edits_dev.bench.cms_rules import format_section

_JAR_VERSION = re.compile(r"^kafka-server-(\d+\.\d+\.\d+[\w.-]*)\.jar$")


def kafka_version(settings: Settings) -> dict[str, str]:
    """The broker's version: from the running local broker's jars, else the configured one."""
    from stream_edits_dev.broker import local

    pid = local.running_pid(settings)
    if pid is not None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        for arg, following in zip(argv, argv[1:], strict=False):
            if arg != b"-cp":
                continue
            for entry in following.decode(errors="replace").split(":"):
                folder = Path(entry.rstrip("*"))
                for jar in sorted(folder.glob("kafka-server-*.jar")) if folder.is_dir() else []:
                    match = _JAR_VERSION.match(jar.name)
                    if match:
                        return {"version": match.group(1), "source": "running broker's jars"}
    return {"version": settings.kafka_version, "source": "settings (broker not started here)"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(settings: Settings) -> dict[str, Any]:
    """What the numbers were measured on."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": kafka_version(settings),
        "faust_streaming": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "orjson": version("orjson"),
        "loadavg_before": list(os.getloadavg()),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator to 4 significant digits; None when either is missing or 0."""
    if not numerator or not denominator:
        return None
    return float(f"{numerator / denominator:.4g}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    rates = [str(r) for r in report["config"]["rates"]]
    header = f"{'pipeline':<28} {'drain lines/s':>13} {'CPU us/line':>11}"
    for rate in rates:
        header += f" | @{rate}/s p50 / p95 / p99 ms (miss)"
    lines = [header, "-" * len(header)]
    for result in report["pipelines"].values():
        if "error" in result:
            lines.append(f"{result['label']:<28} failed: {result['error']}")
            continue
        throughput = result["throughput"]
        per_line = throughput.get("pipeline_cpu_us_per_line")
        row = f"{result['label']:<28} {throughput['lines_per_s']:>13,.0f} {_ms(per_line):>11}"
        for rate in rates:
            stats = result["latency"].get(rate)
            if stats is None:
                row += " | " + " " * 30
                continue
            cell = f"{_ms(stats['p50_ms'])} / {_ms(stats['p95_ms'])} / {_ms(stats['p99_ms'])}"
            row += f" | {cell:>24} ({stats['missing']})"
        lines.append(row)
    ratios = report["ratios"]
    check, state = report["check"], report["state"]
    lines += [
        "",
        f"processor / raw aiokafka throughput:  {ratios['processor_vs_raw']}",
        f"processor / Faust pass-through:       {ratios['processor_vs_faust']}",
        f"unkeyed / keyed input (processor):    {ratios.get('unkeyed_vs_processor')}",
        f"replay drain / processor drain:       {ratios.get('replay_vs_processor')} "
        f"({_rate(report.get('replay'))} lines/s)",
        f"two workers / one (processor drain):  {ratios.get('two_workers_vs_one')}",
        f"processor / baseline source (drain):  {ratios.get('processor_vs_baseline')}",
        f"check (offline, one process):         {check['lines_per_s']:,.0f} lines/s",
        f"state per patient-day:                {state['wire_bytes_per_patient_day']} B "
        f"ClaimEntry+DayState wire forms, {state['stored_bytes_per_patient_day']} B as stored "
        f"(member records + keys; {state['patient_days']:,} patient-days)",
    ]
    if "cms_rules" in report:
        lines += format_section(report["cms_rules"])
    lines += format_stages(report)
    machine = report["machine"]
    lines.append(
        f"machine: {machine['nproc']} CPUs, Python {machine['python']}, "
        f"Kafka {machine['kafka']['version']}, load {machine['loadavg_before'][0]:.2f} before / "
        f"{machine['loadavg_after'][0]:.2f} after"
    )
    return "\n".join(lines)


def format_stages(report: dict[str, Any]) -> list[str]:
    """Where the processors' batches spent their time: per phase, per stage, how many batches
    (collections, for "gc") and mean / p50 / p99 ms."""
    lines: list[str] = []
    for result in report["pipelines"].values():
        for phase, stages in result.get("stages", {}).items():
            if phase == "drain":
                what = "draining the backlog"
            else:
                per_line = result["latency"].get(phase, {}).get("cpu_us_per_line")
                what = f"at {phase} lines/s ({_ms(per_line)} CPU us/line)"
            lines += ["", f"{result['label']}, {what}: count, mean / p50 / p99 ms"]
            for stage, numbers in stages.items():
                if not numbers["count"]:
                    continue
                cells = " / ".join(_ms(numbers[key]) for key in ("mean_ms", "p50_ms", "p99_ms"))
                lines.append(f"  {stage:<10} {numbers['count']:>7,}  {cells}")
    return lines


def _rate(replay: dict[str, Any] | None) -> str:
    return "failed" if not replay else f"{replay['lines_per_s']:,.0f}"


def write_json(report: dict[str, Any], path: Path) -> None:
    """bench.json, indented."""
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


def plot_latency(
    samples: dict[str, dict[str, list[float]]], labels: dict[str, str], path: Path
) -> None:
    """One CDF panel per offered rate, one line per pipeline, latency on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({rate for by_rate in samples.values() for rate in by_rate}, key=float)
    fig, axes = plt.subplots(1, max(1, len(rates)), figsize=(6 * max(1, len(rates)), 4.5))
    panels = axes if len(rates) > 1 else [axes]
    for ax, rate in zip(panels, rates, strict=False):
        for name, by_rate in samples.items():
            values = sorted(by_rate.get(rate, []))
            if not values:
                continue
            shares = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, shares, where="post", label=labels[name])
        ax.set_xscale("log")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("share of lines")
        ax.set_title(f"offered {rate} lines/s")
        ax.axhline(0.99, color="grey", linewidth=0.5, linestyle=":")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
