"""X12 adjustment codes per edit: data in the manifest, defaults documented, validated at load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from stream_edits.models import AdjustmentCodes
from stream_edits.rules.loader import DEFAULT_DIRECTORY, RulesError, load_rules
from stream_edits.rules.tables import DEFAULT_ADJUSTMENT_CODES

MUE = "[adjustment_codes]\nMUE_EXCEEDED = "


def rules_with(tmp_path: Path, table: str) -> Path:
    """A copy of the default rules whose manifest's [adjustment_codes] table is `table`."""
    directory = Path(shutil.copytree(DEFAULT_DIRECTORY, tmp_path / "rules"))
    manifest = directory / "manifest.toml"
    text = re.sub(r"\[adjustment_codes\]\n(.+\n)+", table, manifest.read_text())
    manifest.write_text(text)
    return directory


def test_the_shipped_rules_carry_the_documented_defaults() -> None:
    rules = load_rules()

    assert rules.adjustment("MUE_EXCEEDED") == AdjustmentCodes(
        group_code="CO", carc="151", rarc="N362"
    )
    assert rules.adjustment("ADDON_WITHOUT_PRIMARY") == AdjustmentCodes(
        group_code="CO", carc="B15", rarc="N122"
    )
    assert rules.adjustment("PTP_BUNDLED") == AdjustmentCodes(group_code="CO", carc="236")
    assert rules.adjustment_codes == DEFAULT_ADJUSTMENT_CODES


def test_a_manifest_overrides_the_edits_it_names_and_the_others_keep_the_defaults(
    tmp_path: Path,
) -> None:
    table = '[adjustment_codes]\nPTP_BUNDLED = { group_code = "PR", carc = "97", rarc = "M15" }\n'

    rules = load_rules(rules_with(tmp_path, table))

    assert rules.adjustment("PTP_BUNDLED") == AdjustmentCodes(
        group_code="PR", carc="97", rarc="M15"
    )
    assert rules.adjustment("MUE_EXCEEDED") == dict(DEFAULT_ADJUSTMENT_CODES)["MUE_EXCEEDED"]
    assert rules.version != load_rules().version


def test_a_manifest_without_the_table_gets_the_defaults(tmp_path: Path) -> None:
    assert load_rules(rules_with(tmp_path, "")).adjustment_codes == DEFAULT_ADJUSTMENT_CODES


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('[adjustment_codes]\nNCCI = { group_code = "CO", carc = "1" }\n', "unknown edit 'NCCI'"),
        (
            MUE + '{ group_code = "XX", carc = "151" }\n',
            "adjustment_codes.MUE_EXCEEDED: group_code: Input should be 'CO', 'OA', 'PI' or 'PR'",
        ),
        (
            MUE + '{ group_code = "CO", carc = "1510" }\n',
            "adjustment_codes.MUE_EXCEEDED: carc: String should match pattern",
        ),
        (
            MUE + '{ group_code = "CO", carc = "151", rarc = "362" }\n',
            "adjustment_codes.MUE_EXCEEDED: rarc: String should match pattern",
        ),
        (
            MUE + '{ group_code = "CO", carc = "151", rar = "N1" }\n',
            "adjustment_codes.MUE_EXCEEDED: rar: Extra inputs are not permitted",
        ),
        (
            MUE + '{ carc = "151" }\n',
            "adjustment_codes.MUE_EXCEEDED: group_code: Field required",
        ),
        ('adjustment_codes = "CO-151"\n', "adjustment_codes must be a table"),
    ],
    ids=["unknown-edit", "group-code", "carc", "rarc", "unknown-key", "missing-group", "not-table"],
)
def test_bad_adjustment_codes_stop_the_load_naming_the_manifest_and_the_edit(
    tmp_path: Path, table: str, fragment: str
) -> None:
    with pytest.raises(RulesError) as raised:
        load_rules(rules_with(tmp_path, table))

    assert str(raised.value).startswith("manifest.toml: ")
    assert fragment in str(raised.value)
