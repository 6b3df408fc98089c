"""Workers on a CMS-layout rules directory: the default tables' decisions, one compiled copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_edits.settings import Settings
from stream_edits_dev.bench import worker_start
from stream_edits_dev.bench.workload import generate
from tests.integration.stream_harness import StreamRig, expected_verdicts
from tests.unit.rules.generated import generated_directory

pytestmark = pytest.mark.broker


async def test_two_workers_on_a_generated_cms_directory_decide_as_the_default_tables_do(
    rig: StreamRig, tmp_path: Path
) -> None:
    rules_dir = generated_directory(tmp_path / "rules")
    cache = tmp_path / "rules-cache"
    rig.extra_env.update(
        STREAM_EDITS_RULES_DIR=str(rules_dir), STREAM_EDITS_RULES_CACHE_DIR=str(cache)
    )
    lines = generate(3_000, seed=29)
    expected = expected_verdicts(lines)  # `check` with the shipped default tables
    rig.start_worker()
    rig.start_worker()
    await rig.produce(lines)
    assert await rig.verdicts(expected, timeout=180) == expected, rig.logs()
    # Both workers mapped the one compiled file the first of them wrote.
    assert len(list(cache.glob("*.rules"))) == 1
    assert not list(cache.glob("*.tmp"))


async def test_the_bench_times_worker_starts_with_each_rules_directory(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    rules_dir = generated_directory(tmp_path / "rules")
    settings = Settings(bootstrap_servers=bootstrap_servers)
    result = await worker_start.compare(settings, rules_dir, tmp_path / "cache", rounds=1)
    assert len(result["default_s"]) == len(result["cms_s"]) == 1
    assert 0 < result["median_default_s"] < worker_start.READY_TIMEOUT_S
    assert 0 < result["median_cms_s"] < worker_start.READY_TIMEOUT_S
    assert list((tmp_path / "cache").glob("*.rules"))  # compiled before the starts
