"""Edit tables as data: MUE, add-on and PTP rows with effective dates, indexed for the engine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, get_args

from stream_edits.models import AdjustmentCodes, EditCode, RuleSource

# CMS add-on file: Type 2 add-ons have no listed primaries; the primary cell holds this placeholder.
PLACEHOLDER_PRIMARY = "CCCCC"

# Modifier indicator 1 pairs are bypassed by an NCCI-associated modifier on the column-two line.
DEFAULT_BYPASS_MODIFIERS = frozenset({"59", "XE", "XS", "XP", "XU"})

# What the 835 says for each denying edit, unless the manifest's [adjustment_codes] says otherwise:
# CO (contractual obligation: the patient is not billed) with
# MUE: CARC 151 (payment adjusted: the number of services exceeds what is supported),
#      RARC N362 (the number of days or units of service exceeds our acceptable maximum);
# add-on: CARC B15 (this service requires another qualifying service to be paid),
#      RARC N122 (add-on code cannot be billed by itself);
# PTP: CARC 236 (not compatible with another procedure on the same day under NCCI), no RARC.
DEFAULT_ADJUSTMENT_CODES: tuple[tuple[EditCode, AdjustmentCodes], ...] = (
    ("MUE_EXCEEDED", AdjustmentCodes(group_code="CO", carc="151", rarc="N362")),
    ("ADDON_WITHOUT_PRIMARY", AdjustmentCodes(group_code="CO", carc="B15", rarc="N122")),
    ("PTP_BUNDLED", AdjustmentCodes(group_code="CO", carc="236")),
)


def in_force(effective: date, deletion: date | None, dos: date) -> bool:
    """True when a row effective on `effective` and deleted on `deletion` applies on `dos`.

    CMS deletion dates are the first day a row no longer applies.
    """
    return effective <= dos and (deletion is None or dos < deletion)


@dataclass(frozen=True, slots=True)
class MueRule:
    """A Medically Unlikely Edit: at most `limit` units of `code`.

    MAI 1 limits each line; MAI 2 (policy) and 3 (clinical) limit the date of service.
    """

    code: str
    limit: int
    mai: int
    rationale: str
    source: RuleSource

    @property
    def per_day(self) -> bool:
        """True for date-of-service edits (MAI 2 and 3)."""
        return self.mai in (2, 3)


@dataclass(frozen=True, slots=True)
class AddOnRule:
    """An add-on code edit: `addon` is payable only with `primary` (edit type 1, 2 or 3)."""

    primary: str
    addon: str
    edit_type: int
    source: RuleSource


@dataclass(frozen=True, slots=True)
class PtpRule:
    """An NCCI procedure-to-procedure pair: `column2` is denied beside an accepted `column1`.

    Modifier indicator 0: never bypassed; 1: bypassed by an associated modifier on the column-two
    line; 9: not applicable (the pair is inert).
    """

    column1: str
    column2: str
    modifier_indicator: int
    rationale: str
    source: RuleSource


def _source_in_force(source: RuleSource, dos: date) -> bool:
    return in_force(source.effective_date, source.deletion_date, dos)


# How Type 3 add-on rows (CMS lists some primaries; a contractor may allow others) are enforced:
# "listed": payable only beside a listed primary, as Type 1 (a payer lists the primaries it also
# allows as more Type 3 rows in an [[addon]] file of its own); "any": not enforced, as Type 2.
AddOnType3 = Literal["listed", "any"]
ADDON_TYPE3_POLICIES: tuple[AddOnType3, ...] = get_args(AddOnType3)


class RuleIndex(Protocol):
    """Rows by the code the engine asks about, every date; built on demand by compiled indexes."""

    def mue_rows(self, code: str) -> tuple[MueRule, ...]:
        """MUE rows of `code`."""
        ...

    def addon_rows(self, addon: str) -> tuple[AddOnRule, ...]:
        """Add-on rows (every edit type) of the add-on code `addon`."""
        ...

    def ptp_rows(self, column2: str) -> tuple[PtpRule, ...]:
        """PTP rows (every modifier indicator) whose column-two code is `column2`."""
        ...

    def mentions(self, code: str) -> bool:
        """True when some row names `code` (the CCCCC placeholder excepted)."""
        ...

    def all_rows(self) -> tuple[tuple[MueRule, ...], tuple[AddOnRule, ...], tuple[PtpRule, ...]]:
        """Every row of each kind (for tests and small tables)."""
        ...


class RowIndex:
    """A RuleIndex over rule objects held in memory (rows built by hand or by tests)."""

    def __init__(
        self, mue: Iterable[MueRule], addon: Iterable[AddOnRule], ptp: Iterable[PtpRule]
    ) -> None:
        self._rows = (tuple(mue), tuple(addon), tuple(ptp))
        by_mue: defaultdict[str, list[MueRule]] = defaultdict(list)
        for m in self._rows[0]:
            by_mue[m.code].append(m)
        by_addon: defaultdict[str, list[AddOnRule]] = defaultdict(list)
        for a in self._rows[1]:
            by_addon[a.addon].append(a)
        by_ptp: defaultdict[str, list[PtpRule]] = defaultdict(list)
        for p in self._rows[2]:
            by_ptp[p.column2].append(p)
        codes: set[str] = set(by_mue)
        codes.update(code for a in self._rows[1] for code in (a.primary, a.addon))
        codes.update(code for p in self._rows[2] for code in (p.column1, p.column2))
        codes.discard(PLACEHOLDER_PRIMARY)
        self._mue = {k: tuple(v) for k, v in by_mue.items()}
        self._addon = {k: tuple(v) for k, v in by_addon.items()}
        self._ptp = {k: tuple(v) for k, v in by_ptp.items()}
        self._codes = frozenset(codes)

    def mue_rows(self, code: str) -> tuple[MueRule, ...]:
        """MUE rows of `code`."""
        return self._mue.get(code, ())

    def addon_rows(self, addon: str) -> tuple[AddOnRule, ...]:
        """Add-on rows of `addon`."""
        return self._addon.get(addon, ())

    def ptp_rows(self, column2: str) -> tuple[PtpRule, ...]:
        """PTP rows of column-two code `column2`."""
        return self._ptp.get(column2, ())

    def mentions(self, code: str) -> bool:
        """True when some row names `code`."""
        return code in self._codes

    def all_rows(self) -> tuple[tuple[MueRule, ...], tuple[AddOnRule, ...], tuple[PtpRule, ...]]:
        """Every row as given."""
        return self._rows


def _enforced(row: AddOnRule, type3: AddOnType3) -> bool:
    # Type 1: listed primaries, enforced. Type 2: no primary list (CCCCC): nothing to check, the
    # add-on is left to the contractor's policy. Type 3: the manifest's addon_type3 decides.
    if row.primary == PLACEHOLDER_PRIMARY:
        return False
    return row.edit_type == 1 or (row.edit_type == 3 and type3 == "listed")


@dataclass(frozen=True)
class RuleSet:
    """Every loaded edit row behind an index by code; queries take the date of service."""

    index: RuleIndex = field(default_factory=lambda: RowIndex((), (), ()))
    bypass_modifiers: frozenset[str] = DEFAULT_BYPASS_MODIFIERS
    version: str = "empty"
    adjustment_codes: tuple[tuple[EditCode, AdjustmentCodes], ...] = DEFAULT_ADJUSTMENT_CODES
    addon_type3: AddOnType3 = "listed"
    _adjustments: dict[str, AdjustmentCodes] = field(init=False, repr=False, compare=False)
    # Answers by (query, code, date of service): a stream asks the same few codes for the same
    # few days over and over. Bounded by the codes rules name times the days they are asked on.
    _answers: dict[tuple[str, str, date], Any] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adjustments", dict(self.adjustment_codes))

    @property
    def mue_rules(self) -> tuple[MueRule, ...]:
        """Every MUE row (materialized: meant for tests and small tables)."""
        return self.index.all_rows()[0]

    @property
    def addon_rules(self) -> tuple[AddOnRule, ...]:
        """Every add-on row (materialized)."""
        return self.index.all_rows()[1]

    @property
    def ptp_rules(self) -> tuple[PtpRule, ...]:
        """Every PTP row (materialized)."""
        return self.index.all_rows()[2]

    def mue(self, code: str, dos: date) -> MueRule | None:
        """The MUE row for `code` in force on `dos`, if any (the latest effective one wins)."""
        key = ("mue", code, dos)
        if key not in self._answers:
            rows = [m for m in self.index.mue_rows(code) if _source_in_force(m.source, dos)]
            best = max(rows, key=lambda m: m.source.effective_date) if rows else None
            self._answers[key] = best
        answer: MueRule | None = self._answers[key]
        return answer

    def addon_primaries(self, addon: str, dos: date) -> tuple[AddOnRule, ...]:
        """Enforced add-on rows for `addon` in force on `dos` (Type 1, and Type 3 unless the
        manifest says addon_type3 = "any"); empty when no primary is required then."""
        key = ("aoc", addon, dos)
        if key not in self._answers:
            rows = self.index.addon_rows(addon)
            self._answers[key] = tuple(
                a
                for a in rows
                if _enforced(a, self.addon_type3) and _source_in_force(a.source, dos)
            )
        answer: tuple[AddOnRule, ...] = self._answers[key]
        return answer

    def ptp_column1(self, column2: str, dos: date) -> tuple[PtpRule, ...]:
        """PTP pairs in force on `dos` that bundle `column2` into some column-one code."""
        key = ("ptp", column2, dos)
        if key not in self._answers:
            # Modifier indicator 9: the pair is not applicable. A deleted pair is out of force.
            self._answers[key] = tuple(
                p
                for p in self.index.ptp_rows(column2)
                if p.modifier_indicator != 9 and _source_in_force(p.source, dos)
            )
        answer: tuple[PtpRule, ...] = self._answers[key]
        return answer

    def adjustment(self, edit: EditCode) -> AdjustmentCodes | None:
        """The 835 group code, CARC and RARC a denial by `edit` carries."""
        return self._adjustments.get(edit)

    def mentions(self, code: str) -> bool:
        """True when some rule names `code`: only such lines need state in the engine."""
        return self.index.mentions(code)

    @classmethod
    def of(
        cls,
        mue: Iterable[MueRule] = (),
        addon: Iterable[AddOnRule] = (),
        ptp: Iterable[PtpRule] = (),
        bypass_modifiers: Iterable[str] = DEFAULT_BYPASS_MODIFIERS,
        version: str = "adhoc",
        adjustment_codes: Iterable[tuple[EditCode, AdjustmentCodes]] = DEFAULT_ADJUSTMENT_CODES,
        addon_type3: AddOnType3 = "listed",
    ) -> RuleSet:
        """Build a rule set from rule objects held in memory (tests)."""
        return cls(
            RowIndex(mue, addon, ptp),
            frozenset(bypass_modifiers),
            version,
            tuple(adjustment_codes),
            addon_type3,
        )
