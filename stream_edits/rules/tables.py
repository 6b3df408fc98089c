"""Edit tables as data: MUE, add-on and PTP rows with effective dates, indexed for the engine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from stream_edits.models import AdjustmentCodes, EditCode, RuleSource

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
    """An add-on code edit: `addon` is payable only with `primary` (Type 1 rows are enforced)."""

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


@dataclass(frozen=True)
class RuleSet:
    """Every loaded edit row, indexed by code; queries take the date of service."""

    mue_rules: tuple[MueRule, ...] = ()
    addon_rules: tuple[AddOnRule, ...] = ()
    ptp_rules: tuple[PtpRule, ...] = ()
    bypass_modifiers: frozenset[str] = DEFAULT_BYPASS_MODIFIERS
    version: str = "empty"
    adjustment_codes: tuple[tuple[EditCode, AdjustmentCodes], ...] = DEFAULT_ADJUSTMENT_CODES
    _mue: dict[str, tuple[MueRule, ...]] = field(init=False, repr=False, compare=False)
    _addon: dict[str, tuple[AddOnRule, ...]] = field(init=False, repr=False, compare=False)
    _ptp: dict[str, tuple[PtpRule, ...]] = field(init=False, repr=False, compare=False)
    mentioned_codes: frozenset[str] = field(init=False, compare=False)
    _adjustments: dict[str, AdjustmentCodes] = field(init=False, repr=False, compare=False)
    # Answers by (query, code, date of service): a stream asks the same few codes for the same
    # few days over and over. Bounded by the codes rules name times the days they are asked on.
    _answers: dict[tuple[str, str, date], Any] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        mue: defaultdict[str, list[MueRule]] = defaultdict(list)
        for m in self.mue_rules:
            mue[m.code].append(m)
        addon: defaultdict[str, list[AddOnRule]] = defaultdict(list)
        for a in self.addon_rules:
            if a.edit_type == 1:
                addon[a.addon].append(a)
        ptp: defaultdict[str, list[PtpRule]] = defaultdict(list)
        for p in self.ptp_rules:
            if p.modifier_indicator != 9:
                ptp[p.column2].append(p)
        codes: set[str] = set(mue)
        for a in self.addon_rules:
            codes.update((a.primary, a.addon))
        for p in self.ptp_rules:
            codes.update((p.column1, p.column2))
        codes.discard("CCCCC")  # CMS placeholder primary on Type 2 add-on rows
        object.__setattr__(self, "_mue", {k: tuple(v) for k, v in mue.items()})
        object.__setattr__(self, "_addon", {k: tuple(v) for k, v in addon.items()})
        object.__setattr__(self, "_ptp", {k: tuple(v) for k, v in ptp.items()})
        object.__setattr__(self, "mentioned_codes", frozenset(codes))
        object.__setattr__(self, "_adjustments", dict(self.adjustment_codes))

    def mue(self, code: str, dos: date) -> MueRule | None:
        """The MUE row for `code` in force on `dos`, if any (the latest effective one wins)."""
        key = ("mue", code, dos)
        if key not in self._answers:
            rows = [m for m in self._mue.get(code, ()) if _source_in_force(m.source, dos)]
            best = max(rows, key=lambda m: m.source.effective_date) if rows else None
            self._answers[key] = best
        answer: MueRule | None = self._answers[key]
        return answer

    def addon_primaries(self, addon: str, dos: date) -> tuple[AddOnRule, ...]:
        """Type 1 add-on rows for `addon` in force on `dos`; empty when it is no add-on then."""
        key = ("aoc", addon, dos)
        if key not in self._answers:
            rows = self._addon.get(addon, ())
            self._answers[key] = tuple(a for a in rows if _source_in_force(a.source, dos))
        answer: tuple[AddOnRule, ...] = self._answers[key]
        return answer

    def ptp_column1(self, column2: str, dos: date) -> tuple[PtpRule, ...]:
        """PTP pairs in force on `dos` that bundle `column2` into some column-one code."""
        key = ("ptp", column2, dos)
        if key not in self._answers:
            rows = self._ptp.get(column2, ())
            self._answers[key] = tuple(p for p in rows if _source_in_force(p.source, dos))
        answer: tuple[PtpRule, ...] = self._answers[key]
        return answer

    def adjustment(self, edit: EditCode) -> AdjustmentCodes | None:
        """The 835 group code, CARC and RARC a denial by `edit` carries."""
        return self._adjustments.get(edit)

    def mentions(self, code: str) -> bool:
        """True when some rule names `code`: only such lines need state in the engine."""
        return code in self.mentioned_codes

    @classmethod
    def of(
        cls,
        mue: Iterable[MueRule] = (),
        addon: Iterable[AddOnRule] = (),
        ptp: Iterable[PtpRule] = (),
        bypass_modifiers: Iterable[str] = DEFAULT_BYPASS_MODIFIERS,
        version: str = "adhoc",
        adjustment_codes: Iterable[tuple[EditCode, AdjustmentCodes]] = DEFAULT_ADJUSTMENT_CODES,
    ) -> RuleSet:
        """Build a rule set from rows (tests and loaders)."""
        return cls(
            tuple(mue),
            tuple(addon),
            tuple(ptp),
            frozenset(bypass_modifiers),
            version,
            tuple(adjustment_codes),
        )
