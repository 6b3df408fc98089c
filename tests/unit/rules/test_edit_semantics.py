"""What each MUE adjudication indicator and add-on edit type means, on hand-worked examples.

The rows are written in the CMS layouts and loaded like a payer's files; the lines go through the
engine. One provider, one patient, one date of service unless a line says otherwise.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from stream_edits.engine import EditEngine
from stream_edits.models import ClaimLineEvent
from stream_edits.rules import load_rules
from tests.factories import NPI_B, line
from tests.unit.engine.helpers import run, verdicts

MUE = (
    '"HCPCS/\nCPT Code","Practitioner Services MUE Values","MUE Adjudication Indicator",'
    '"MUE Rationale"\n'
    'W1001,2,"1 Line Edit","Anatomic Consideration"\n'
    'W1002,2,"2 Date of Service Edit: Policy","CMS Policy"\n'
    'W1003,1,"3 Date of Service Edit: Clinical","Clinical: Data"\n'
)
AOC = (
    "Primary Code,Add-on Code,AOC Edit Type,Primary Code Deletion Date,AOC Deletion Date,"
    "AOC Edit Effective Date,AOC Edit Deletion Date,Special Instruction Notes\n"
    "W2001,W2101,1,,,20100101,,\n"
    "CCCCC,W2102,2,,,20100101,,Contractor to determine the primary codes\n"
    "W2001,W2103,3,,,20100101,,Contractor may allow other primaries\n"
)
PTP = (
    "Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date\t"
    "Modifier\tPTP Edit Rationale\n"
    "W3001\tW3002\t\t20100101\t20200101\t0\tMutually exclusive procedures\n"
    "W3001\tW3003\t\t20100101\t*\t9\tMutually exclusive procedures\n"
)
MANIFEST = """\
{type3}
[[mue]]
file = "mue.csv"
effective_date = 2010-01-01

[[addon]]
file = "aoc.csv"

[[ptp]]
file = "ptp.txt"
"""
ACCEPT = ("accept", [])
DENY_MUE = ("deny", ["MUE_EXCEEDED"])
DENY_AOC = ("deny", ["ADDON_WITHOUT_PRIMARY"])
DENY_PTP = ("deny", ["PTP_BUNDLED"])
DOS = date(2019, 6, 3)


def decide(tmp_path: Path, events: list[ClaimLineEvent], type3: str = "") -> list[object]:
    """The verdict of each line, in the order the events name them."""
    for name, text in {
        "manifest.toml": MANIFEST.format(type3=type3),
        "mue.csv": MUE,
        "aoc.csv": AOC,
        "ptp.txt": PTP,
    }.items():
        (tmp_path / name).write_text(text)
    result = verdicts(run(EditEngine(load_rules(tmp_path)), events))
    return [result[(e.claim_id, e.line_number or 0)] for e in events]


def test_mai_1_limits_each_line_not_the_day(tmp_path: Path) -> None:
    # W1001: 2 units per line. 2 + 2 on one day is fine (each line is within 2); 3 on a line is not.
    events = [
        line("C1", 1, "W1001", units=2, dos=DOS),
        line("C2", 1, "W1001", units=2, dos=DOS, minutes=5),
        line("C3", 1, "W1001", units=3, dos=DOS, minutes=10),
    ]
    assert decide(tmp_path, events) == [ACCEPT, ACCEPT, DENY_MUE]


def test_mai_2_sums_the_days_units_across_claims_and_denies_the_whole_line_that_exceeds(
    tmp_path: Path,
) -> None:
    # W1002: 2 units per day. 1 (accepted, 1 used) + 1 (accepted, 2 used) + 1 (3 > 2: denied).
    # The denied line consumes nothing, and another provider has a day of its own.
    events = [
        line("C1", 1, "W1002", dos=DOS),
        line("C2", 1, "W1002", dos=DOS, minutes=5),
        line("C3", 1, "W1002", dos=DOS, minutes=10),
        line("C4", 1, "W1002", dos=DOS, minutes=15, npi_=NPI_B, units=2),
    ]
    assert decide(tmp_path, events) == [ACCEPT, ACCEPT, DENY_MUE, ACCEPT]


def test_mai_2_denies_a_line_whose_own_units_exceed_and_keeps_the_units_for_later_lines(
    tmp_path: Path,
) -> None:
    # 3 units alone exceed 2: denied whole; the day's 2 units stay for the next line (2 <= 2).
    events = [
        line("C1", 1, "W1002", units=3, dos=DOS),
        line("C2", 1, "W1002", units=2, dos=DOS, minutes=5),
    ]
    assert decide(tmp_path, events) == [DENY_MUE, ACCEPT]


def test_mai_3_is_summed_over_the_day_like_mai_2(tmp_path: Path) -> None:
    # W1003: 1 unit per day (clinical). RT and LT on two lines count 2: the later line is denied.
    events = [
        line("C1", 1, "W1003", modifiers=["RT"], dos=DOS),
        line("C1", 2, "W1003", modifiers=["LT"], dos=DOS, minutes=1),
        line("C2", 1, "W1003", dos=date(2019, 6, 4)),
    ]
    assert decide(tmp_path, events) == [ACCEPT, DENY_MUE, ACCEPT]


def test_aoc_type_1_needs_a_listed_primary(tmp_path: Path) -> None:
    events = [
        line("C1", 1, "W2101", dos=DOS),
        line("C2", 1, "W2001", dos=date(2019, 6, 4)),
        line("C2", 2, "W2101", dos=date(2019, 6, 4)),
    ]
    assert decide(tmp_path, events) == [DENY_AOC, ACCEPT, ACCEPT]


def test_aoc_type_2_has_no_primary_list_so_the_add_on_is_not_edited(tmp_path: Path) -> None:
    assert decide(tmp_path, [line("C1", 1, "W2102", dos=DOS)]) == [ACCEPT]


@pytest.mark.parametrize("type3", ["", 'addon_type3 = "listed"'])
def test_aoc_type_3_by_default_needs_one_of_the_listed_primaries(
    tmp_path: Path, type3: str
) -> None:
    events = [
        line("C1", 1, "W2103", dos=DOS),
        line("C2", 1, "W9999", dos=date(2019, 6, 4)),  # a primary the file does not list
        line("C2", 2, "W2103", dos=date(2019, 6, 4)),
        line("C3", 1, "W2001", dos=date(2019, 6, 5)),
        line("C3", 2, "W2103", dos=date(2019, 6, 5)),
    ]
    assert decide(tmp_path, events, type3) == [DENY_AOC, ACCEPT, DENY_AOC, ACCEPT, ACCEPT]


def test_aoc_type_3_is_not_edited_when_the_manifest_allows_any_primary(tmp_path: Path) -> None:
    events = [line("C1", 1, "W2103", dos=DOS)]
    assert decide(tmp_path, events, 'addon_type3 = "any"') == [ACCEPT]


def test_a_ptp_edit_deleted_before_the_date_of_service_does_not_apply(tmp_path: Path) -> None:
    # W3001/W3002 is in force 2010-01-01 up to (not including) its deletion date 2020-01-01.
    before, on = date(2019, 12, 31), date(2020, 1, 1)
    events = [
        line("C1", 1, "W3001", dos=before),
        line("C1", 2, "W3002", dos=before),
        line("C2", 1, "W3001", dos=on),
        line("C2", 2, "W3002", dos=on),
    ]
    assert decide(tmp_path, events) == [ACCEPT, DENY_PTP, ACCEPT, ACCEPT]


def test_a_ptp_pair_with_modifier_indicator_9_is_inert(tmp_path: Path) -> None:
    events = [line("C1", 1, "W3001", dos=DOS), line("C1", 2, "W3003", dos=DOS)]
    assert decide(tmp_path, events) == [ACCEPT, ACCEPT]


def test_an_unknown_addon_type3_policy_is_refused_naming_the_manifest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="manifest.toml: addon_type3 must be 'listed' or 'any'"):
        decide(tmp_path, [], 'addon_type3 = "sometimes"')
