"""Edit rules as data: CMS-layout MUE, add-on and PTP tables loaded into a dated RuleSet."""

from stream_edits.rules.loader import RulesError, load_rules
from stream_edits.rules.tables import RuleSet

__all__ = ["RuleSet", "RulesError", "load_rules"]
