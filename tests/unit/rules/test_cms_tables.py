"""CMS-sized rule directories: the generator, the compiled cache, decisions alike to the default."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import fields
from datetime import date
from pathlib import Path

import pytest

from stream_edits.engine import LineDecision
from stream_edits.jobs.check import final_decisions
from stream_edits.rules import RulesError, load_rules
from stream_edits.rules import loader as rules_loader
from stream_edits.rules.tables import RuleSet
from stream_edits_dev.bench import cms_rules as cms_rules_bench
from stream_edits_dev.bench.cms_tables import PTP_PARTS, Sizes, generate
from stream_edits_dev.bench.workload import generate as generate_lines
from tests.unit.rules.generated import TEST_SIZES, generated_directory

SAMPLES = Path(__file__).resolve().parents[3] / "topics" / "samples" / "claim-lines.ndjson"


@pytest.fixture(scope="module")
def cms_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_directory(tmp_path_factory.mktemp("cms"))


@pytest.fixture(scope="module")
def cms_rules(cms_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(cms_dir, cache_dir=tmp_path_factory.mktemp("cache"))


def test_the_generator_writes_the_sizes_asked_for_in_the_cms_layouts(
    cms_dir: Path, cms_rules: RuleSet
) -> None:
    parts = sorted(p.name for p in cms_dir.glob("ptp_practitioner_part*.txt"))
    assert parts == [f"ptp_practitioner_part{n}.txt" for n in range(1, PTP_PARTS + 1)]
    assert len(cms_rules.mue_rules) == TEST_SIZES.mue
    assert len(cms_rules.addon_rules) == TEST_SIZES.aoc
    assert len(cms_rules.ptp_rules) == TEST_SIZES.ptp
    assert Counter(m.mai for m in cms_rules.mue_rules).keys() == {1, 2, 3}
    assert Counter(a.edit_type for a in cms_rules.addon_rules).keys() == {1, 2, 3}
    assert {a.primary for a in cms_rules.addon_rules if a.edit_type == 2} == {"CCCCC"}
    deleted = [p for p in cms_rules.ptp_rules if p.source.deletion_date is not None]
    assert 0.1 < len(deleted) / TEST_SIZES.ptp < 0.3
    assert {p.source.file for p in cms_rules.ptp_rules} == set(parts)
    pairs = Counter((p.column1, p.column2) for p in cms_rules.ptp_rules)
    assert any(n == 2 for n in pairs.values())  # deleted, then re-added
    assert {p.modifier_indicator for p in cms_rules.ptp_rules} == {0, 1, 9}
    mue_text = (cms_dir / "mue_practitioner.csv").read_bytes()
    assert b'"HCPCS/\r\nCPT Code"' in mue_text and b"3 Date of Service Edit: Clinical" in mue_text
    ptp_text = (cms_dir / "ptp_practitioner_part2.txt").read_text()
    assert "\t*\t" in ptp_text and "Column 1\tColumn 2\t" in ptp_text


def test_the_generator_is_deterministic_by_seed(tmp_path: Path) -> None:
    sizes = Sizes(mue=50, aoc=30, ptp=400)
    first, again, other = (tmp_path / n for n in ("a", "b", "c"))
    generate(first, seed=3, sizes=sizes)
    generate(again, seed=3, sizes=sizes)
    generate(other, seed=4, sizes=sizes)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert all((first / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert (first / "ptp_practitioner_part1.txt").read_bytes() != (
        other / "ptp_practitioner_part1.txt"
    ).read_bytes()


def test_the_generated_directory_carries_the_shipped_rows(cms_rules: RuleSet) -> None:
    default = load_rules()
    dos = date(2025, 3, 14)
    for code in ("64461", "64462", "64463", "76942", "77002", "77003", "77012"):
        assert _rows(cms_rules.mue(code, dos)) == _rows(default.mue(code, dos))
        assert _rows(cms_rules.addon_primaries(code, dos)) == _rows(
            default.addon_primaries(code, dos)
        )
        assert _rows(cms_rules.ptp_column1(code, dos)) == _rows(default.ptp_column1(code, dos))
        assert cms_rules.mentions(code)
    # The family's extra generated rows exist but are inert or out of force.
    assert len(cms_rules.index.ptp_rows("64461")) > len(default.index.ptp_rows("64461"))


def _rows(found: object) -> list[tuple[object, ...]]:
    """Rules without their file and row (those differ between the two directories)."""
    rows = found if isinstance(found, tuple) else (found,)
    return [
        (
            *(getattr(r, f.name) for f in fields(r) if f.name != "source"),
            r.source.effective_date,
            r.source.deletion_date,
        )
        for r in rows
        if r is not None
    ]


@pytest.mark.parametrize("source", ["samples", "workload"])
def test_the_cms_sized_directory_decides_every_line_as_the_default_does(
    cms_rules: RuleSet, source: str
) -> None:
    if source == "samples":
        lines = SAMPLES.read_bytes().splitlines()
    else:
        lines = generate_lines(3_000, seed=11)
    default = final_decisions(lines, load_rules())
    cms = final_decisions(lines, cms_rules)
    assert [_verdict(d) for d in cms] == [_verdict(d) for d in default]
    assert any(d.status.value == "deny" for d in default)


def _verdict(decision: LineDecision) -> tuple[object, ...]:
    edits = [(e.code, e.message, e.adjustment) for e in decision.edits]
    keys = ("claim_id", "line_number", "status", "revision")
    return (*(getattr(decision, k) for k in keys), edits)


def test_a_bad_row_in_a_generated_ptp_part_stops_the_load_naming_file_and_row(
    tmp_path: Path,
) -> None:
    directory = generate(tmp_path / "rules", sizes=Sizes(mue=40, aoc=20, ptp=400))[0].parent
    part = directory / "ptp_practitioner_part3.txt"
    lines = part.read_bytes().split(b"\r\n")
    bad = 20  # a data row below the notice, title and four header rows
    lines[bad - 1] = b"W0001\tW0002\t\t20160101\t*\t7\tMutually exclusive procedures"
    part.write_bytes(b"\r\n".join(lines))
    with pytest.raises(RulesError) as caught:
        load_rules(directory, cache_dir=tmp_path / "cache")
    assert str(caught.value).startswith(f"ptp_practitioner_part3.txt, row {bad}: ")
    assert "Modifier indicator '7' is not one of 0, 1, 9" in str(caught.value)
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-written is left behind


def test_the_compiled_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    directory = generated_directory(tmp_path)
    cache = tmp_path / "cache"
    first = load_rules(directory, cache_dir=cache)
    [compiled] = cache.glob("*.rules")
    assert compiled.name.startswith(first.version)
    os.utime(compiled, (1_000_000, 1_000_000))
    again = load_rules(directory, cache_dir=cache)
    assert again.version == first.version
    assert compiled.stat().st_mtime == 1_000_000  # mapped, not rewritten
    dos = date(2025, 3, 14)
    assert first.mue("64461", dos) is not None
    mue = directory / "mue_practitioner.csv"
    mue.write_bytes(mue.read_bytes().replace(b"64461,1,", b"64461,3,"))
    changed = load_rules(directory, cache_dir=cache)
    assert changed.version != first.version
    assert len(list(cache.glob("*.rules"))) == 2
    rule = changed.mue("64461", dos)
    assert rule is not None and rule.limit == 3


def test_a_damaged_cache_file_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    directory = generated_directory(tmp_path)
    cache = tmp_path / "cache"
    first = load_rules(directory, cache_dir=cache)
    [compiled] = cache.glob("*.rules")
    compiled.write_bytes(compiled.read_bytes()[:-4])
    rebuilt = load_rules(directory, cache_dir=cache)
    assert rebuilt.version == first.version
    assert rebuilt.mue("64461", date(2025, 3, 14)) == first.mue("64461", date(2025, 3, 14))


def test_an_unwritable_cache_compiles_in_memory(tmp_path: Path) -> None:
    directory = generated_directory(tmp_path)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    rules = load_rules(directory, cache_dir=blocked / "cache")
    assert rules.mentions("64462")


def test_small_directories_compile_in_memory_without_a_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    rules = load_rules(None, cache_dir=cache)
    assert rules.mentions("64461") and not cache.exists()
    assert (
        sum(p.stat().st_size for p in rules_loader.DEFAULT_DIRECTORY.iterdir())
        < rules_loader.CACHE_THRESHOLD_BYTES
    )


def test_the_bench_section_measures_load_memory_and_check_against_the_default(
    cms_dir: Path,
) -> None:
    result = cms_rules_bench.measure(cms_dir, generate_lines(500, seed=5), probe_lines=200)
    assert result["rows"] == {"mue": TEST_SIZES.mue, "aoc": TEST_SIZES.aoc, "ptp": TEST_SIZES.ptp}
    assert result["check"]["decisions_identical"] is True
    assert result["compiled_mb"] > 0 and result["load_s"]["cold_compile"] > 0
    [one] = result["memory_mb"]["cms_1"]
    two = result["memory_mb"]["cms_2"]
    assert len(two) == 2
    # Two processes that read every page of the one mapped file share those pages.
    touched = [m["after_touching_every_page"] for m in two]
    assert all(m["pss"] < m["rss"] for m in touched)
    assert one["after_touching_every_page"]["rss"] >= one["after_deciding"]["rss"]
    text = "\n".join(cms_rules_bench.format_section(result))
    assert "CMS, 2 processes" in text and "decisions identical: True" in text
