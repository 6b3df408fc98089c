"""Write the documentation tables that repeat the code, from the code.

  settings  docs/operations/configuration.md: every field of `stream_edits.settings.Settings`
            with its environment variable, default and description (the field's docstring)
  metrics   docs/operations/monitoring.md: every metric of the worker's telemetry registry with
            its type, labels and help text (Faust's own `faust_` metrics are added at run time)

Each table sits between `<!-- BEGIN GENERATED: NAME ... -->` and `<!-- END GENERATED: NAME -->`
in its page; the text around it is the page's own.

    .venv/bin/python scripts/docs_tables.py           # rewrite the tables
    .venv/bin/python scripts/docs_tables.py --check   # exit 1 when a committed table differs

tests/unit/test_docs_tables.py runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from stream_edits.runtime.processor import Stats
from stream_edits.runtime.telemetry import NAMESPACE, PartitionLag, Telemetry
from stream_edits.settings import Settings, default_home

ROOT = Path(__file__).resolve().parent.parent
PROCESS_PREFIX = "process_"  # prometheus_client's ProcessCollector: one row for all


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined or field.default is None:
        return ""
    else:
        value = field.default
    text = str(value)
    home = str(default_home())
    if text.startswith(home):
        text = "~/.cache/stream-edits" + text[len(home) :]
    return f"`{text}`"


def settings_table() -> str:
    """The settings table: one row per field of Settings."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = [
        "| variable | default | |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        description = _cell(field.description or "")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def _sample_telemetry() -> Telemetry:
    """A telemetry registry with one value of every label, so each metric shows its labels."""
    stats = Stats(
        decisions_by_status={"accept": 1},
        decisions_by_edit={"MUE_EXCEEDED": 1},
        dead_letters_by_reason={"invalid_line": 1},
    )
    telemetry = Telemetry(lambda: stats, rules_version="docs")
    telemetry.lags([PartitionLag("claim-lines", 0, 0, 0.0)])
    return telemetry


def metrics_table() -> str:
    """The metrics table: one row per metric of the worker's telemetry registry."""
    rows = [
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    process = False
    for metric in _sample_telemetry().registry.collect():
        if metric.name.startswith(PROCESS_PREFIX):
            process = True
            continue
        labels = sorted(
            {label for sample in metric.samples for label in sample.labels if label != "le"}
        )
        name = metric.name.removeprefix(f"{NAMESPACE}_")
        suffix = "_total" if metric.type == "counter" else ""
        shown = ", ".join(f"`{label}`" for label in labels)
        doc = _cell(metric.documentation)
        rows.append(f"| `{name}{suffix}` | {metric.type} | {shown} | {doc} |")
    if process:  # which ones depends on the platform
        rows.append(
            "| `process_*` | | | CPU, memory, file descriptors and start time of the process |"
        )
    return "\n".join(rows)


TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("docs/operations/configuration.md", settings_table),
    "metrics": ("docs/operations/monitoring.md", metrics_table),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {name}\b[^>]*-->)(.*?)(<!-- END GENERATED: {name} -->)",
        re.DOTALL,
    )


def render(page: str, name: str, table: str) -> str:
    """`page` with the generated block `name` holding `table`; ValueError when it has none."""
    pattern = _block(name)
    if not pattern.search(page):
        raise ValueError(f"no generated block {name!r}")
    return pattern.sub(lambda m: f"{m.group(1)}\n{table}\n{m.group(3)}", page, count=1)


def stale_tables(root: Path = ROOT) -> list[str]:
    """The pages whose committed table differs from what the code generates now."""
    stale = []
    for name, (path, make) in TABLES.items():
        page = (root / path).read_text(encoding="utf-8")
        if render(page, name, make()) != page:
            stale.append(f"{path} ({name})")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a table differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_tables()
        for page in stale:
            print(f"out of date: {page}; run python scripts/docs_tables.py", file=sys.stderr)
        return 1 if stale else 0
    for name, (path, make) in TABLES.items():
        page_path = ROOT / path
        page = page_path.read_text(encoding="utf-8")
        page_path.write_text(render(page, name, make()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
