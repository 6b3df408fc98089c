"""Fixtures for engine tests: the shipped default rules and a fresh engine."""

from __future__ import annotations

import pytest

from stream_edits.engine import EditEngine
from stream_edits.rules.loader import load_rules
from stream_edits.rules.tables import RuleSet


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules()


@pytest.fixture
def engine(rules: RuleSet) -> EditEngine:
    return EditEngine(rules)
