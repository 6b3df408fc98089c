"""Fixtures for engine tests: the shipped default rules, or a CMS-sized directory carrying them,
and a fresh engine. Every scenario that takes `rules` or `engine` runs with both: the generated
directory must decide the default family exactly as the shipped tables do."""

from __future__ import annotations

import pytest

from stream_edits.engine import EditEngine
from stream_edits.rules.loader import load_rules
from stream_edits.rules.tables import RuleSet
from tests.unit.rules.generated import generated_directory


@pytest.fixture(scope="session", params=["default", "cms-layout"])
def rules(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    if request.param == "default":
        return load_rules()
    root = tmp_path_factory.mktemp("rules")
    return load_rules(generated_directory(root), cache_dir=root / "cache")


@pytest.fixture
def engine(rules: RuleSet) -> EditEngine:
    return EditEngine(rules)
