"""Generated CMS-layout rule directories for tests: written once per size and seed, then reused."""

from __future__ import annotations

from pathlib import Path

from stream_edits_dev.bench.cms_tables import Sizes, generate

# Big enough for every MAI, every add-on edit type, deleted and re-added PTP pairs in all four
# parts and the on-disk cache (over 1 MiB of files); small enough to write in about a second.
TEST_SIZES = Sizes(mue=2_000, aoc=600, ptp=30_000)


def generated_directory(root: Path, sizes: Sizes = TEST_SIZES, seed: int = 7) -> Path:
    """The directory generated under `root` for `sizes` and `seed` (written on first use)."""
    directory = root / f"cms-{sizes.mue}-{sizes.aoc}-{sizes.ptp}-seed{seed}"
    if not (directory / "manifest.toml").is_file():
        generate(directory, seed=seed, sizes=sizes)
    return directory
