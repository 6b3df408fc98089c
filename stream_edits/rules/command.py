"""`stream-edits rules`: compile a rules directory ahead of workers, or generate a CMS-sized one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stream_edits.rules.compiled import CompiledIndex
from stream_edits.rules.loader import RulesError, load_rules


def add_arguments(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `rules compile` and `rules generate` subcommands."""
    compile_ = actions.add_parser(
        "compile",
        help="validate every row and fill the compiled cache (workers then start in seconds)",
    )
    compile_.add_argument("directory", type=Path, nargs="?", default=None, help="rules directory")
    compile_.add_argument(
        "--cache-dir", type=Path, default=None, help="default: STREAM_EDITS_RULES_CACHE_DIR"
    )
    generate = actions.add_parser(
        "generate",
        help="write synthetic CMS-sized tables in the CMS layouts (tests and the bench)",
    )
    generate.add_argument("directory", type=Path)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--mue-rows", type=int, default=15_000)
    generate.add_argument("--aoc-rows", type=int, default=4_000)
    generate.add_argument("--ptp-rows", type=int, default=2_000_000)


def run(args: argparse.Namespace, rules_dir: Path | None, cache_dir: Path) -> int:
    """Run `rules compile` or `rules generate`; the exit code."""
    if args.action == "generate":
        from stream_edits_dev.bench.cms_tables import Sizes, generate

        sizes = Sizes(mue=args.mue_rows, aoc=args.aoc_rows, ptp=args.ptp_rows)
        started = time.perf_counter()
        written = generate(args.directory, seed=args.seed, sizes=sizes)
        took = time.perf_counter() - started
        print(f"wrote {len(written)} files to {args.directory} in {took:.1f} s")
        return 0
    started = time.perf_counter()
    try:
        rules = load_rules(args.directory or rules_dir, cache_dir=args.cache_dir or cache_dir)
    except RulesError as error:
        print(f"stream-edits rules compile: {error}", file=sys.stderr)
        return 2
    took = time.perf_counter() - started
    index = rules.index
    counts = index.row_counts() if isinstance(index, CompiledIndex) else {}
    rows = ", ".join(f"{n:,} {kind.upper()}" for kind, n in counts.items())
    print(f"rules {rules.version}: {rows} rows, ready in {took:.1f} s")
    return 0
