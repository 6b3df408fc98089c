"""The functional core knows nothing of Kafka: importing it pulls in neither Faust nor aiokafka."""

from __future__ import annotations

import subprocess
import sys


def test_engine_rules_and_check_import_without_faust_or_aiokafka() -> None:
    probe = (
        "import sys, stream_edits.engine, stream_edits.rules.loader, stream_edits.jobs.check;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
