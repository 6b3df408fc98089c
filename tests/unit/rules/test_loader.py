"""Loading CMS-layout edit tables: the shipped defaults, real-file quirks, dates and validation."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from stream_edits.models import RuleSource
from stream_edits.rules import RulesError, RuleSet, load_rules

NOTICE = '"CPT codes, descriptions and other data only are copyright\nAmerican Medical Assoc."\n'
MUE_HEADER = (
    '"HCPCS/\nCPT Code","Practitioner Services MUE Values",'
    '"MUE Adjudication Indicator","MUE Rationale"\n'
)
AOC_HEADER = (
    "Primary Code,Add-on Code,AOC Edit Type,Primary Code Deletion Date,AOC Deletion Date,"
    "AOC Edit Effective Date,AOC Edit Deletion Date,Special Instruction Notes\n"
)
PTP_HEADER = (
    "Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date\t"
    "Modifier\tPTP Edit Rationale\n"
)
# In the fixture files the notice takes rows 1-2, so MUE data starts on row 5 (its header cell
# holds a line break) and add-on and PTP data on row 4.
MUE_ROW = '64461,1,"2 Date of Service Edit: Policy",Code Descriptor / CPT Instruction\n'
AOC_ROW = "64461,64462,1,,,20160101,,\n"
PTP_ROW = "64461\t77002\t\t20160101\t*\t0\tCPT Manual or CMS manual coding instructions\n"
MANIFEST = """\
[[mue]]
file = "mue.csv"
effective_date = 2016-01-01

[[addon]]
file = "aoc.csv"

[[ptp]]
file = "ptp.txt"
"""

WriteRules = Callable[..., Path]


@pytest.fixture
def write_rules(tmp_path: Path) -> WriteRules:
    """Factory: a rules directory with one valid file of each kind; keywords replace a file's text
    (None leaves the file out); `files` adds more files."""

    def write(
        manifest: str = MANIFEST,
        mue: str | None = NOTICE + MUE_HEADER + MUE_ROW,
        aoc: str | None = NOTICE + AOC_HEADER + AOC_ROW,
        ptp: str | None = NOTICE + PTP_HEADER + PTP_ROW,
        files: dict[str, str] | None = None,
    ) -> Path:
        texts = {"manifest.toml": manifest, "mue.csv": mue, "aoc.csv": aoc, "ptp.txt": ptp}
        for name, text in {**texts, **(files or {})}.items():
            path = tmp_path / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")
        return tmp_path

    return write


def error_of(directory: Path) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(directory)
    return str(caught.value)


IN_FORCE = [date(2016, 1, 1), date(2020, 6, 30), date(2026, 12, 31)]
PARAVERTEBRAL = ("64461", "64462", "64463")
IMAGING = ("76942", "77002", "77003", "77012")


@pytest.mark.parametrize("dos", IN_FORCE)
def test_the_default_tables_limit_each_paravertebral_code_to_one_unit_a_day(dos: date) -> None:
    rules = load_rules()
    for code in PARAVERTEBRAL:
        mue = rules.mue(code, dos)
        assert mue is not None
        assert (mue.limit, mue.per_day, mue.source.table) == (1, True, "MUE")
    mue_64462 = rules.mue("64462", dos)
    assert mue_64462 is not None and mue_64462.mai == 2


@pytest.mark.parametrize("dos", IN_FORCE)
def test_the_default_tables_make_64461_the_primary_of_64462(dos: date) -> None:
    rules = load_rules()
    [aoc] = rules.addon_primaries("64462", dos)
    assert (aoc.primary, aoc.edit_type, aoc.source.table) == ("64461", 1, "AOC")
    assert rules.addon_primaries("64461", dos) == ()


@pytest.mark.parametrize("dos", IN_FORCE)
def test_the_default_tables_bundle_imaging_guidance_into_every_paravertebral_code(
    dos: date,
) -> None:
    rules = load_rules()
    for imaging in IMAGING:
        pairs = rules.ptp_column1(imaging, dos)
        assert sorted(p.column1 for p in pairs) == list(PARAVERTEBRAL)
        assert {(p.modifier_indicator, p.source.table) for p in pairs} == {(0, "PTP")}


def test_the_default_tables_answer_nothing_before_the_codes_entered_cpt_in_2016() -> None:
    rules = load_rules()
    dos = date(2015, 12, 31)
    assert [rules.mue(code, dos) for code in PARAVERTEBRAL] == [None, None, None]
    assert rules.addon_primaries("64462", dos) == ()
    assert [rules.ptp_column1(code, dos) for code in IMAGING] == [(), (), (), ()]


def test_the_default_tables_carry_a_short_version_and_the_ncci_bypass_modifiers() -> None:
    rules = load_rules()
    assert re.fullmatch(r"[0-9a-f]{12}", rules.version)
    assert rules.bypass_modifiers == {"59", "XE", "XS", "XP", "XU"}
    assert load_rules(None).version == rules.version


def test_a_cms_mue_file_with_its_quirks_parses(tmp_path: Path) -> None:
    notice = (
        b'"CPT codes, descriptions and other data only are copyright 2024 American Medical\r\n'
        b"Association. All Rights Reserved. CPT\xae is a registered trademark.\r\n"
        b'\r\nApplicable FARS/HHSARS apply.",,,\r\n'
    )
    header = (
        b'"HCPCS/\nCPT Code","Outpatient Hospital Services MUE Values",'
        b'"MUE Adjudication Indicator","MUE Rationale"\r\n'
    )
    rows = b'64463,1,"3 Date of Service Edit: Clinical","Nature of Service/Procedure"\r\n'
    (tmp_path / "mue.csv").write_bytes(notice + b",,,\r\n" + header + rows)
    (tmp_path / "manifest.toml").write_text(MANIFEST.split("[[addon]]")[0])
    mue = load_rules(tmp_path).mue("64463", date(2024, 1, 1))
    assert mue is not None
    assert (mue.limit, mue.mai, mue.rationale) == (1, 3, "Nature of Service/Procedure")
    assert mue.source == RuleSource(
        table="MUE", file="mue.csv", row=8, effective_date=date(2016, 1, 1)
    )


def test_a_ptp_header_split_over_two_rows_with_legends_parses(write_rules: WriteRules) -> None:
    ptp = (
        "CPT only copyright American Medical Association.\n\nColumn1/Column 2 Edits\n"
        "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\n"
        "\t\tprior to 1996\tDate\tDate *=no data\t0=not allowed 1=allowed\t\n"
        "\t\t\t\t\t9=not applicable\t\n"
        "64461\t77002\t*\t20160101\t*\t1\tMisuse of column two code with column one code\n"
    )
    [pair] = load_rules(write_rules(ptp=ptp)).ptp_rules
    assert (pair.column1, pair.column2, pair.modifier_indicator) == ("64461", "77002", 1)
    assert pair.rationale == "Misuse of column two code with column one code"
    assert (pair.source.row, pair.source.deletion_date) == (7, None)


def test_an_add_on_file_with_cms_abbreviated_headers_and_julian_dates_parses(
    write_rules: WriteRules,
) -> None:
    aoc = (
        "Add-On Code,Primary Code,AOC_DEL_DT (Julian),Primary_Code_DEL_DT (Julian),"
        "AOC_Edit_EFF_DT (Julian),AOC_EDIT_DEL_DT (Julian),AOC_Edit_Type,Special Notes\n"
        "64462,64461,,2024061,2016001,*,1,\n"
    )
    [aoc_rule] = load_rules(write_rules(aoc=aoc)).addon_rules
    assert (aoc_rule.primary, aoc_rule.addon, aoc_rule.edit_type) == ("64461", "64462", 1)
    assert aoc_rule.source.effective_date == date(2016, 1, 1)
    assert aoc_rule.source.deletion_date == date(2024, 3, 1)


def test_row_numbers_count_physical_lines_through_multi_line_cells(
    write_rules: WriteRules,
) -> None:
    message = error_of(write_rules(mue=NOTICE + MUE_HEADER + MUE_ROW + "64462,x,2,\n"))
    assert message.startswith("mue.csv, row 6: ")


def test_quarterly_mue_files_apply_by_date_of_service_with_exclusive_deletion(
    write_rules: WriteRules,
) -> None:
    manifest = """\
[[mue]]
file = "mue.csv"
effective_date = 2024-01-01
deletion_date = 2024-04-01

[[mue]]
file = "mue_q2.csv"
effective_date = 2024-04-01
"""
    q2 = MUE_HEADER + "64461,2,3 Date of Service Edit: Clinical,\n"
    rules = load_rules(write_rules(manifest=manifest, files={"mue_q2.csv": q2}))
    limits = {
        dos: (m.limit, m.source.file) if (m := rules.mue("64461", dos)) else None
        for dos in (date(2023, 12, 31), date(2024, 3, 31), date(2024, 4, 1))
    }
    assert limits == {
        date(2023, 12, 31): None,
        date(2024, 3, 31): (1, "mue.csv"),
        date(2024, 4, 1): (2, "mue_q2.csv"),
    }


def test_a_ptp_pair_applies_from_its_effective_date_until_the_day_before_deletion(
    write_rules: WriteRules,
) -> None:
    rows = (
        "64461\t77002\t\t20160101\t20200101\t0\t\n"
        "64461\t77002\t\t20200101\t*\t1\tre-added with a bypass\n"
    )
    rules = load_rules(write_rules(ptp=PTP_HEADER + rows))
    indicators = {
        dos: [p.modifier_indicator for p in rules.ptp_column1("77002", dos)]
        for dos in (date(2015, 12, 31), date(2019, 12, 31), date(2020, 1, 1))
    }
    assert indicators == {date(2015, 12, 31): [], date(2019, 12, 31): [0], date(2020, 1, 1): [1]}


def test_an_add_on_edit_ends_at_the_earliest_of_its_deletion_dates(
    write_rules: WriteRules,
) -> None:
    row = "64461,64462,1,20230101,20210101,20160101,*,\n"
    rules = load_rules(write_rules(aoc=AOC_HEADER + row))
    [aoc] = rules.addon_rules
    assert aoc.source == RuleSource(
        table="AOC",
        file="aoc.csv",
        row=2,
        effective_date=date(2016, 1, 1),
        deletion_date=date(2021, 1, 1),
    )
    assert rules.addon_primaries("64462", date(2020, 12, 31)) == (aoc,)
    assert rules.addon_primaries("64462", date(2021, 1, 1)) == ()


def test_type_2_add_on_rows_with_the_ccccc_placeholder_load_but_are_not_enforced(
    write_rules: WriteRules,
) -> None:
    rules = load_rules(write_rules(aoc=AOC_HEADER + "CCCCC,64462,2,,,20160101,,Contractor\n"))
    [aoc] = rules.addon_rules
    assert (aoc.primary, aoc.edit_type) == ("CCCCC", 2)
    assert rules.addon_primaries("64462", date(2024, 1, 1)) == ()
    assert not rules.mentions("CCCCC")


def test_ptp_pairs_with_modifier_indicator_9_load_but_are_inert(write_rules: WriteRules) -> None:
    rules = load_rules(write_rules(ptp=PTP_HEADER + "64461\t77002\t\t20160101\t*\t9\n"))
    [pair] = rules.ptp_rules
    assert pair.modifier_indicator == 9
    assert rules.ptp_column1("77002", date(2024, 1, 1)) == ()


def test_a_row_deleted_on_its_effective_date_never_applies_and_overlaps_nothing(
    write_rules: WriteRules,
) -> None:
    rows = "64461\t77002\t\t20180101\t20180101\t1\t\n64461\t77002\t\t20160101\t*\t0\t\n"
    rules = load_rules(write_rules(ptp=PTP_HEADER + rows))
    assert [p.modifier_indicator for p in rules.ptp_column1("77002", date(2018, 1, 1))] == [0]


def test_the_version_is_stable_and_changes_when_any_file_changes(write_rules: WriteRules) -> None:
    first = load_rules(write_rules()).version
    again = load_rules(write_rules()).version
    ptp_changed = load_rules(write_rules(ptp=PTP_HEADER + PTP_ROW.replace("\t0\t", "\t1\t")))
    manifest_changed = load_rules(write_rules(manifest="# quarter 2\n" + MANIFEST))
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert again == first
    assert len({first, ptp_changed.version, manifest_changed.version}) == 3


BAD_ROWS = [
    ("mue", "6446,1,2,", "HCPCS/CPT Code '6446' is not a 5-character code"),
    ("mue", "64461,one,2,", "MUE value 'one' is not a non-negative whole number"),
    ("mue", "64461,-1,2,", "MUE value '-1' is not a non-negative whole number"),
    ("mue", "64461,4294967296,2,", "MUE value '4294967296' is not below 1,000,000,000"),
    ("mue", "64461,1,4 Date of Service Edit,", "Indicator '4 Date of Service Edit' does not start"),
    ("mue", "64461,1,,", "MUE Adjudication Indicator '' does not start with 1, 2 or 3"),
    ("mue", f"{MUE_ROW}64461,1,2,", "MUE 64461 is already in force on 2016-01-01 (mue.csv, row 5)"),
    ("aoc", "64461,6446a,1,,,20160101,,", "Add-on Code '6446a' is not a 5-character code"),
    ("aoc", "64461,64462,4,,,20160101,,", "AOC Edit Type '4' is not one of 1, 2, 3"),
    ("aoc", "CCCCC,64462,1,,,20160101,,", "placeholder primary CCCCC on a Type 1 row"),
    ("aoc", "64461,64462,1,,,2016-01-01,,", "Edit Effective Date '2016-01-01' is not a date"),
    ("aoc", "64461,64462,1,,,,,", "Edit Effective Date is empty"),
    ("aoc", "64461,64462,1,,,20160101,20150101,", "Edit Deletion Date 2015-01-01 is before"),
    ("aoc", f"{AOC_ROW}64461,64462,1,,,20170101,,", "AOC 64461/64462 is already in force"),
    ("ptp", "64461\t7700\t\t20160101\t*\t0\t", "Column 2 '7700' is not a 5-character code"),
    ("ptp", "64461\t77002\t\t20160101\t*\t2\t", "Modifier indicator '2' is not one of 0, 1, 9"),
    ("ptp", "64461\t77002\t\t20161301\t*\t0\t", "Effective Date '20161301' is not a date"),
    ("ptp", "64461\t77002\t\t20160101\t20160230\t0\t", "Deletion Date '20160230' is not a date"),
    ("ptp", "64461\t77002\t\t20160101\t20151231\t0\t", "Deletion Date 2015-12-31 is before"),
    ("ptp", "64461\t77002\t\t\t*\t0\t", "Effective Date is empty"),
    ("ptp", f"{PTP_ROW}64461\t77002\t\t20190101\t*\t1\t", "date windows overlap"),
]


@pytest.mark.parametrize(
    ("kind", "rows", "fragment"), BAD_ROWS, ids=[fragment for _, _, fragment in BAD_ROWS]
)
def test_a_bad_row_is_refused_naming_its_file_and_row(
    write_rules: WriteRules, kind: str, rows: str, fragment: str
) -> None:
    header = {"mue": MUE_HEADER, "aoc": AOC_HEADER, "ptp": PTP_HEADER}[kind]
    file = {"mue": "mue.csv", "aoc": "aoc.csv", "ptp": "ptp.txt"}[kind]
    message = error_of(write_rules(**{kind: NOTICE + header + rows + "\n"}))
    bad_row = (NOTICE + header + rows).count("\n") + 1
    assert message.startswith(f"{file}, row {bad_row}: ")
    assert fragment in message


def test_mue_windows_from_two_manifest_entries_may_not_overlap(write_rules: WriteRules) -> None:
    manifest = MANIFEST + '\n[[mue]]\nfile = "mue_q2.csv"\neffective_date = 2024-04-01\n'
    directory = write_rules(manifest=manifest, files={"mue_q2.csv": MUE_HEADER + MUE_ROW})
    assert error_of(directory) == (
        "mue_q2.csv, row 3: MUE 64461 is already in force on 2024-04-01 (mue.csv, row 5): "
        "date windows overlap"
    )


BAD_MANIFESTS = [
    ("hcpcs = []\n" + MANIFEST, "unknown key 'hcpcs'"),
    (MANIFEST + '[[lab]]\nfile = "lab.csv"\n', "unknown key 'lab'"),
    (MANIFEST.replace("effective_date", "efective_date"), "(mue.csv): unknown key 'efective_date'"),
    (MANIFEST.replace("effective_date = 2016-01-01", ""), "(mue.csv): missing 'effective_date'"),
    (MANIFEST.replace("2016-01-01", '"2016-01-01"'), "effective_date must be a TOML date"),
    (MANIFEST.replace("2016-01-01", "2016-01-01T00:00:00"), "effective_date must be a TOML date"),
    (
        MANIFEST.replace("2016-01-01", "2016-01-01\ndeletion_date = 2015-01-01"),
        "deletion_date 2015-01-01 is before 2016-01-01",
    ),
    ('bypass_modifiers = ["59", "X"]\n' + MANIFEST, "bypass_modifiers must be a list of"),
    ('mue = "mue.csv"\n', "mue must be written as [[mue]] tables"),
    ("[[ptp]]\nfile = 3\n", "[[ptp]] entry 1: 'file' must name a file"),
    ("# nothing here\n", "lists no [[mue]], [[addon]] or [[ptp]] files"),
    ("[[mue]\n", "not valid TOML"),
]


@pytest.mark.parametrize(("manifest", "fragment"), BAD_MANIFESTS, ids=[f for _, f in BAD_MANIFESTS])
def test_a_bad_manifest_is_refused_naming_the_manifest(
    write_rules: WriteRules, manifest: str, fragment: str
) -> None:
    message = error_of(write_rules(manifest=manifest))
    assert message.startswith("manifest.toml: ")
    assert fragment in message


def test_a_directory_without_a_manifest_is_refused(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"manifest.toml: not found in {tmp_path}")


def test_a_file_missing_from_the_directory_is_refused_by_name(write_rules: WriteRules) -> None:
    assert error_of(write_rules(ptp=None)).startswith(
        "ptp.txt: listed in manifest.toml but not in "
    )


def test_a_file_without_a_header_row_is_refused(write_rules: WriteRules) -> None:
    message = error_of(write_rules(mue=NOTICE + MUE_ROW))
    assert message == (
        "mue.csv: no header row (expected cells 'HCPCS/CPT Code' and '... Services MUE Values')"
    )


def test_a_header_without_a_required_column_is_refused_at_its_row(
    write_rules: WriteRules,
) -> None:
    header = "HCPCS/CPT Code,Practitioner Services MUE Values,MUE Rationale\n"
    message = error_of(write_rules(mue=NOTICE + header + "64461,1,x\n"))
    assert message == "mue.csv, row 3: header has no 'MUE Adjudication Indicator' column"


def test_a_file_of_unknown_type_is_refused(write_rules: WriteRules) -> None:
    manifest = MANIFEST.replace("ptp.txt", "ptp.xlsx")
    directory = write_rules(manifest=manifest, files={"ptp.xlsx": PTP_HEADER + PTP_ROW})
    assert error_of(directory).startswith("ptp.xlsx: unknown file type")


def test_rules_error_is_a_value_error_carrying_file_and_row() -> None:
    error = RulesError("ptp.txt", "Modifier indicator '2' is not one of 0, 1, 9", 12)
    assert isinstance(error, ValueError)
    assert (error.file, error.row) == ("ptp.txt", 12)
    assert str(error) == "ptp.txt, row 12: Modifier indicator '2' is not one of 0, 1, 9"


def test_load_rules_returns_a_rule_set(write_rules: WriteRules) -> None:
    assert isinstance(load_rules(write_rules()), RuleSet)
