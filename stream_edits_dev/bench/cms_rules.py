"""CMS-sized rule tables in the bench: start, memory per worker process, and `check` throughput.

Against the shipped default tables measured in the same run:
- the rules' load at process start: cold (parse, validate, compile into an empty cache) and warm
  (map the cached compiled form), each in a fresh process;
- RSS, PSS and USS (from /proc/PID/smaps_rollup) of one and of two processes that load the rules
  and decide the workload as a worker would, then again after each touched every page of the
  compiled file (its worst case): PSS splits shared pages between the processes that map them,
  USS counts only a process's own pages;
- `check` lines/s over the same lines (best of three, alternated), and whether every decision
  is the same.
`stream-edits bench --cms-rules DIR` adds worker start to a ready /health/ (bench/worker_start.py).

    python -m stream_edits_dev.bench.cms_rules DIR [--lines 20000]   (or stream-edits bench
    --cms-rules)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import orjson

from stream_edits.engine import LineDecision
from stream_edits.jobs.check import final_decisions
from stream_edits.rules.compiled import CompiledIndex
from stream_edits.rules.loader import load_rules
from stream_edits_dev.bench.offline import time_check
from stream_edits_dev.bench.workload import generate

_MB = 1024 * 1024


def measure(cms_dir: Path, lines: list[bytes], probe_lines: int = 5_000) -> dict[str, Any]:
    """Every number of the CMS-sized rules section of the bench report."""
    with tempfile.TemporaryDirectory(prefix="stream-edits-rules-cache-") as cache:
        cold = _probes(cms_dir, Path(cache), 1, probe_lines)[0]
        default = _probes(None, Path(cache), 1, probe_lines)
        one = _probes(cms_dir, Path(cache), 1, probe_lines)
        two = _probes(cms_dir, Path(cache), 2, probe_lines)
        cms_rules = load_rules(cms_dir, cache_dir=Path(cache))
    default_rules = load_rules()
    # Alternated, best of three each: the machine's other work moves single runs by +-30%.
    rounds = [(time_check(lines, default_rules), time_check(lines, cms_rules)) for _ in range(3)]
    default_rate = max(d.lines_per_s for d, _ in rounds)
    cms_rate = max(c.lines_per_s for _, c in rounds)
    same = _verdicts(final_decisions(lines, default_rules)) == _verdicts(
        final_decisions(lines, cms_rules)
    )
    files = [p for p in cms_dir.iterdir() if p.is_file()]
    return {
        "directory": str(cms_dir),
        "files": len(files),
        "file_mb": round(sum(p.stat().st_size for p in files) / _MB, 1),
        "rows": cold["rows"],
        "compiled_mb": round(cold["compiled_bytes"] / _MB, 1),
        "load_s": {
            "cold_compile": cold["load_s"],
            "warm_cached": one[0]["load_s"],
            "default": default[0]["load_s"],
        },
        "cold_compile_max_rss_mb": cold["max_rss_mb"],
        "memory_mb": {"default_1": default, "cms_1": one, "cms_2": two},
        "check": {
            "lines": len(lines),
            "default_lines_per_s": round(default_rate, 1),
            "cms_lines_per_s": round(cms_rate, 1),
            "cms_vs_default": round(cms_rate / default_rate, 3),
            "decisions_identical": same,
        },
    }


def _verdicts(decisions: list[LineDecision]) -> list[tuple[Any, ...]]:
    # Everything a payer acts on; the rule source's file and row differ between directories.
    return [
        (d.claim_id, d.line_number, d.status, d.revision, [(e.code, e.message) for e in d.edits])
        for d in decisions
    ]


def _probes(directory: Path | None, cache: Path, count: int, lines: int) -> list[dict[str, Any]]:
    """Start `count` probe processes together; their load times and memory, as they run."""
    argv = [sys.executable, "-m", "stream_edits_dev.bench.cms_rules", "--probe", str(cache)]
    argv += ["--lines", str(lines), *([str(directory)] if directory else [])]
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(count)
    ]
    try:
        reports = [orjson.loads(_line(p.stdout)) for p in procs]
        for proc, report in zip(procs, reports, strict=True):
            report["after_deciding"] = smaps_rollup(proc.pid)
        for proc in procs:
            _say(proc.stdin, "touch")
        for proc in procs:
            _line(proc.stdout)
        for proc, report in zip(procs, reports, strict=True):
            report["after_touching_every_page"] = smaps_rollup(proc.pid)
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    return reports


def _line(stream: IO[bytes] | None) -> bytes:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("a rules probe process ended early (see its stderr)")
    return line


def _say(stream: IO[bytes] | None, word: str) -> None:
    assert stream is not None
    stream.write(word.encode() + b"\n")
    stream.flush()


def smaps_rollup(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of process `pid`, in MB."""
    fields: dict[str, int] = {}
    for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = row.partition(":")
        fields[name] = int(rest.split()[0])  # kB
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {
        "rss": round(fields["Rss"] / 1024, 1),
        "pss": round(fields["Pss"] / 1024, 1),
        "uss": round(uss / 1024, 1),
    }


def _probe(directory: Path | None, cache: Path, lines: int) -> None:
    """A worker's share of the work: load the rules, decide lines, report, wait, touch, report."""
    import resource

    started = time.perf_counter()
    rules = load_rules(directory, cache_dir=cache)
    load_s = time.perf_counter() - started
    final_decisions(generate(lines, seed=7), rules)
    index = rules.index
    assert isinstance(index, CompiledIndex)  # what load_rules builds, in memory or mapped
    report = {
        "load_s": round(load_s, 3),
        "rows": index.row_counts(),
        "compiled_bytes": index.size_bytes,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    sys.stdout.write(orjson.dumps(report).decode() + "\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() == "touch":
        index.touch_every_page()
    sys.stdout.write("touched\n")
    sys.stdout.flush()
    sys.stdin.readline()


def format_section(result: dict[str, Any]) -> list[str]:
    """The report's lines for the CMS-sized rules."""
    load, check, memory = result["load_s"], result["check"], result["memory_mb"]
    rows = result["rows"]

    def per_process(name: str, phase: str) -> str:
        cells = [
            f"{m[phase]['rss']:.0f}/{m[phase]['pss']:.0f}/{m[phase]['uss']:.0f}"
            for m in memory[name]
        ]
        return " + ".join(cells)

    return [
        f"CMS-sized rules: {rows['mue']:,} MUE, {rows['aoc']:,} AOC, {rows['ptp']:,} PTP rows in "
        f"{result['files']} files ({result['file_mb']} MB); compiled {result['compiled_mb']} MB",
        f"  rules load at start:  cold compile {load['cold_compile']:.1f} s "
        f"(max RSS {result['cold_compile_max_rss_mb']:.0f} MB), warm {load['warm_cached']:.3f} s, "
        f"default {load['default']:.3f} s",
        "  RSS/PSS/USS MB per process (after deciding | after touching every page):",
        f"    default, 1 process:  {per_process('default_1', 'after_deciding')}",
        f"    CMS, 1 process:      {per_process('cms_1', 'after_deciding')} | "
        f"{per_process('cms_1', 'after_touching_every_page')}",
        f"    CMS, 2 processes:    {per_process('cms_2', 'after_deciding')} | "
        f"{per_process('cms_2', 'after_touching_every_page')}",
        *_start_lines(result.get("worker_start")),
        f"  check: {check['cms_lines_per_s']:,.0f} lines/s CMS vs "
        f"{check['default_lines_per_s']:,.0f} default (ratio {check['cms_vs_default']}); "
        f"decisions identical: {check['decisions_identical']}",
    ]


def _start_lines(start: dict[str, Any] | None) -> list[str]:
    if start is None:
        return []
    return [
        f"  worker start to ready (median, alternated): CMS {start['median_cms_s']:.2f} s vs "
        f"default {start['median_default_s']:.2f} s (ratio {start['cms_vs_default']})"
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure (or, with --probe, be one measured process)."""
    parser = argparse.ArgumentParser(prog="python -m stream_edits_dev.bench.cms_rules")
    parser.add_argument("directory", type=Path, nargs="?", default=None)
    parser.add_argument("--lines", type=int, default=20_000, help="workload lines for check")
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    if args.probe is not None:
        _probe(args.directory, args.probe, args.lines)
        return 0
    if args.directory is None:
        parser.error("a rules directory is required")
    result = measure(args.directory, generate(args.lines, seed=7))
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print("\n".join(format_section(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
