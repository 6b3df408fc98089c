"""The documentation tables that repeat the code (settings, metrics) are the code's."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from stream_edits.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts/docs_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_tables", module)
    spec.loader.exec_module(module)
    return module


docs_tables = load_generator()


def test_the_committed_tables_are_what_the_code_generates() -> None:
    assert docs_tables.stale_tables() == [], "run: .venv/bin/python scripts/docs_tables.py"


def test_every_setting_has_a_row_with_its_environment_variable_and_a_description() -> None:
    table = docs_tables.settings_table()
    for name, field in Settings.model_fields.items():
        assert f"| `STREAM_EDITS_{name.upper()}` |" in table
        assert field.description, f"Settings.{name} has no docstring (its description)"


def test_every_project_metric_of_the_registry_has_a_row() -> None:
    registry = docs_tables._sample_telemetry().registry
    table = docs_tables.metrics_table()
    names = [m.name for m in registry.collect() if m.name.startswith("stream_edits_")]
    assert len(names) >= 20
    for name in names:
        assert f"| `{name.removeprefix('stream_edits_')}" in table


def test_a_table_edited_by_hand_is_found_stale(tmp_path: Path) -> None:
    for path, _ in docs_tables.TABLES.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    page = tmp_path / "docs/operations/configuration.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("| `STREAM_EDITS_BATCH_MAX` | `8000` |", "| `X` | `1` |"))
    assert docs_tables.stale_tables(tmp_path) == ["docs/operations/configuration.md (settings)"]


def test_the_generator_rewrites_only_its_block() -> None:
    page = (
        "intro\n<!-- BEGIN GENERATED: settings (x) -->\nold\n"
        "<!-- END GENERATED: settings -->\nend\n"
    )
    assert docs_tables.render(page, "settings", "| new |") == (
        "intro\n<!-- BEGIN GENERATED: settings (x) -->\n| new |\n"
        "<!-- END GENERATED: settings -->\nend\n"
    )
