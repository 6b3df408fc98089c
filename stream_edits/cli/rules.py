"""`stream-edits rules compile | generate`: compile a rules directory ahead of workers, or write
a synthetic CMS-sized one (the generator lives with the bench, in `stream_edits_dev`)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from stream_edits.cli.errors import reported
from stream_edits.cli.parsing import Subparsers
from stream_edits.settings import Settings


@dataclass(frozen=True)
class CompileOptions:
    """What `rules compile` is asked (None: from the settings)."""

    directory: Path | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True)
class GenerateOptions:
    """What `rules generate` is asked: where, the seed and each table's rows."""

    directory: Path
    seed: int = 7
    mue_rows: int = 15_000
    aoc_rows: int = 4_000
    ptp_rows: int = 2_000_000


def add_parser(sub: Subparsers) -> None:
    """The `rules` subcommand and its `compile` and `generate` actions."""
    rules = sub.add_parser("rules", help="compile a rules directory, or generate a CMS-sized one")
    rules.set_defaults(handler=handle)
    actions = rules.add_subparsers(dest="action", required=True)
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


def options(args: argparse.Namespace) -> CompileOptions | GenerateOptions:
    """The options of parsed arguments, by action."""
    if args.action == "generate":
        return GenerateOptions(
            directory=args.directory,
            seed=args.seed,
            mue_rows=args.mue_rows,
            aoc_rows=args.aoc_rows,
            ptp_rows=args.ptp_rows,
        )
    return CompileOptions(directory=args.directory, cache_dir=args.cache_dir)


def compile_rules(settings: Settings, options: CompileOptions) -> int:
    """`rules compile`: one line on what was compiled; exit 0, 2 on bad rules."""
    from stream_edits.rules.precompile import precompile

    def action() -> int:
        done = precompile(
            options.directory or settings.rules_dir, options.cache_dir or settings.rules_cache_dir
        )
        print(done.summary())
        return 0

    return reported("rules compile", settings, action)


def generate_rules(settings: Settings, options: GenerateOptions) -> int:
    """`rules generate`: write the tables; exit 0, 2 when the directory cannot be written."""
    from stream_edits_dev.bench.cms_tables import Sizes, generate

    def action() -> int:
        sizes = Sizes(mue=options.mue_rows, aoc=options.aoc_rows, ptp=options.ptp_rows)
        started = time.perf_counter()
        written = generate(options.directory, seed=options.seed, sizes=sizes)
        took = time.perf_counter() - started
        print(f"wrote {len(written)} files to {options.directory} in {took:.1f} s")
        return 0

    return reported("rules generate", settings, action)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """`rules` from parsed arguments."""
    chosen = options(args)
    if isinstance(chosen, GenerateOptions):
        return generate_rules(settings, chosen)
    return compile_rules(settings, chosen)
