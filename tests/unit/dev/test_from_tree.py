"""The bench's baseline runs the code of its own tree, even beside an editable install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _tree(root: Path, says: str) -> Path:
    package = root / "stream_edits"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(f"import sys\nprint({says!r}, sys.argv[1:])\n")
    return root


def test_the_baseline_tree_is_the_one_imported(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "baseline", "baseline tree")
    run = subprocess.run(
        [sys.executable, "-m", "stream_edits_dev.bench.from_tree", str(tree), "worker", "-x"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "baseline tree ['worker', '-x']"


def test_a_tree_without_the_package_is_refused(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "stream_edits_dev.bench.from_tree", str(tmp_path), "worker"],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "not from" in run.stderr
