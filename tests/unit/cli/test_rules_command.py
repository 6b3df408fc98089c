"""`stream-edits rules compile | generate` through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_edits.cli import main


def test_compile_prints_the_rows_and_generate_writes_a_directory_it_compiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = tmp_path / "cms"
    sizes = ["--mue-rows", "60", "--aoc-rows", "40", "--ptp-rows", "200"]
    assert main(["rules", "generate", str(tables), *sizes]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["rules", "compile", str(tables), *cache]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rules ") and " PTP" in out and "ready in" in out


def test_compile_of_bad_rules_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.toml").write_text("not toml [")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["rules", "compile", str(tmp_path), *cache]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stream-edits rules compile: bad rules: ") and err.count("\n") == 1
