"""Deciding one group (member, date of service, rendering NPI) of lines against a rule set.

A pure function of the group's lines: arrival order never enters. Lines are walked by rule
dependency first (primaries before their add-ons, column-one codes before the column-two codes
they bundle), then by (received_at, claim_id, line_number). A denying edit names its related
lines: the lines decided before it in that walk that caused it (docs/decision-output.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from stream_edits.models import Edit, EditCode, LineRef, RuleSource, Status
from stream_edits.rules.tables import RuleSet


class GroupLine(Protocol):
    """What the decision needs of a line."""

    @property
    def claim_id(self) -> str: ...

    @property
    def line_number(self) -> int: ...

    @property
    def code(self) -> str: ...

    @property
    def units(self) -> int: ...

    @property
    def modifiers(self) -> Sequence[str]: ...

    @property
    def received_us(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """A line's status and failed edits."""

    status: Status
    edits: tuple[Edit, ...] = ()

    @property
    def signature(self) -> list[Any]:
        """What makes two verdicts the same decision: status, which rule rows failed and the
        lines that caused each failure (a denial whose cause changes is a new decision: an
        appeal or an audit must read the cause that holds now).

        A plain list, so it compares equal to itself after an orjson round trip.
        """
        # str(): a StrEnum's value without Enum's Python-level `value` property (per line).
        if not self.edits:
            return [str(self.status), []]
        return [
            str(self.status),
            [
                [
                    e.code,
                    e.rule_source.file,
                    e.rule_source.row,
                    [[r.claim_id, r.line_number] for r in e.related_lines],
                ]
                for e in self.edits
            ],
        ]


def same_before_causes(signature: list[Any], stored: list[Any] | None) -> bool:
    """True when `stored` is a signature kept before related lines were (one entry of code, file
    and row per edit) and names the same status and rule rows as `signature`: the decision did
    not change, only what is known of its cause."""
    if stored is None or stored[0] != signature[0] or len(stored[1]) != len(signature[1]):
        return False
    return all(
        len(old) == 3 and old == new[:3] for old, new in zip(stored[1], signature[1], strict=True)
    )


ACCEPT = Verdict(Status.ACCEPT)
VOID = Verdict(Status.VOID)


def _order_key(line: GroupLine) -> tuple[int, str, int]:
    return line.received_us, line.claim_id, line.line_number


def dependency_depths(codes: Iterable[str], dos: date, rules: RuleSet) -> dict[str, int]:
    """Depth of each code in the graph of rules among `codes`: a code is decided after the codes
    its add-on primaries and PTP column-one partners are. A cycle (no real CMS table has one) is
    cut deterministically at the code visited second in sorted order.
    """
    present = set(codes)
    preds: dict[str, set[str]] = {}
    for code in present:
        before = {a.primary for a in rules.addon_primaries(code, dos)}
        before.update(p.column1 for p in rules.ptp_column1(code, dos))
        preds[code] = (before & present) - {code}
    depth: dict[str, int] = {}
    visiting: set[str] = set()
    for code in sorted(present):
        _visit(code, preds, depth, visiting)
    return depth


def _visit(code: str, preds: dict[str, set[str]], depth: dict[str, int], visiting: set[str]) -> int:
    # A module-level function, not a closure over itself: a self-referencing closure is a
    # reference cycle per call, left for the cyclic garbage collector.
    if code in depth:
        return depth[code]
    visiting.add(code)
    d = 0
    for p in sorted(preds[code]):
        if p not in visiting:
            d = max(d, _visit(p, preds, depth, visiting) + 1)
    visiting.discard(code)
    depth[code] = d
    return d


class _Failure(NamedTuple):
    """A failed edit before its related lines are looked up: the lines of `cause_codes` decided
    before it in the walk, accepted or not as `cause_accepted` says (only the first, with
    `first_only`)."""

    code: EditCode
    message: str
    source: RuleSource
    cause_codes: Collection[str] = ()
    cause_accepted: bool = True
    first_only: bool = False


def decide_group(lines: Sequence[GroupLine], dos: date, rules: RuleSet) -> list[Verdict]:
    """Verdicts for the live (not voided) lines of one group, in the order of `lines`."""
    depths = dependency_depths({ln.code for ln in lines}, dos, rules)
    walk = sorted(range(len(lines)), key=lambda i: (depths[lines[i].code], _order_key(lines[i])))
    units_accepted: dict[str, int] = {}
    verdicts: list[Verdict] = [ACCEPT] * len(lines)
    for count, i in enumerate(walk):
        line = lines[i]
        failed = _addon_edit(line, dos, rules, units_accepted)
        failed += _ptp_edit(line, dos, rules, units_accepted)
        failed += _mue_edit(line, dos, rules, units_accepted)
        if failed:
            # Looked up only for a denial: an accepted line costs nothing for related lines.
            before = [(lines[j], verdicts[j] is ACCEPT) for j in walk[:count]]
            verdicts[i] = Verdict(Status.DENY, tuple([_edit(f, rules, before) for f in failed]))
        else:
            units_accepted[line.code] = units_accepted.get(line.code, 0) + line.units
    return verdicts


@lru_cache(maxsize=1 << 14)
def _line_ref(claim_id: str, line_number: int) -> LineRef:
    # A group is re-decided at every line that joins it: its denials name the same lines again.
    return LineRef(claim_id=claim_id, line_number=line_number)


def _edit(failure: _Failure, rules: RuleSet, before: list[tuple[GroupLine, bool]]) -> Edit:
    related = [
        _line_ref(line.claim_id, line.line_number)
        for line, accepted in before
        if accepted is failure.cause_accepted and line.code in failure.cause_codes
    ]
    return Edit(
        code=failure.code,
        message=failure.message,
        rule_source=failure.source,
        adjustment=rules.adjustment(failure.code),
        related_lines=related[:1] if failure.first_only else related,
    )


def _addon_edit(
    line: GroupLine, dos: date, rules: RuleSet, accepted: dict[str, int]
) -> tuple[_Failure, ...]:
    # CMS add-on code edits, Type 1: payable only beside a payable listed primary.
    aocs = sorted(rules.addon_primaries(line.code, dos), key=lambda a: a.primary)
    if not aocs or any(a.primary in accepted for a in aocs):
        return ()
    primaries = ", ".join(a.primary for a in aocs)
    message = (
        f"Add-on code {line.code} is payable only with an accepted primary procedure "
        f"({primaries}) for the same patient, rendering provider and date of service."
    )
    # Related: the primaries considered, every line of a listed primary code decided before (all
    # of them, as primaries are walked before their add-ons), none accepted.
    considered = {a.primary for a in aocs}
    return (_Failure("ADDON_WITHOUT_PRIMARY", message, aocs[0].source, considered, False),)


def _ptp_edit(
    line: GroupLine, dos: date, rules: RuleSet, accepted: dict[str, int]
) -> tuple[_Failure, ...]:
    # NCCI PTP: the column-two line is denied beside an accepted column-one line, unless the pair
    # allows a modifier (indicator 1) and the column-two line carries an associated one.
    bypass = rules.bypass_modifiers.intersection(line.modifiers)
    for pair in sorted(rules.ptp_column1(line.code, dos), key=lambda p: p.column1):
        if pair.column1 not in accepted:
            continue
        if pair.modifier_indicator == 1 and bypass:
            continue
        why = (
            "no modifier bypasses this pair (modifier indicator 0)"
            if pair.modifier_indicator == 0
            else "no NCCI-associated modifier on this line (modifier indicator 1)"
        )
        message = (
            f"{line.code} is included in {pair.column1} billed for the same patient, rendering "
            f"provider and date of service and is not paid separately; {why}. {pair.rationale}"
        )
        # Related: the first accepted column-one line of the walk, the one it is bundled into.
        return (_Failure("PTP_BUNDLED", message, pair.source, (pair.column1,), True, True),)
    return ()


def _mue_edit(
    line: GroupLine, dos: date, rules: RuleSet, accepted: dict[str, int]
) -> tuple[_Failure, ...]:
    # MUE: MAI 2/3 sum units over every line of the date of service; MAI 1 limits each line.
    mue = rules.mue(line.code, dos)
    if mue is None:
        return ()
    already = accepted.get(line.code, 0) if mue.per_day else 0
    if already + line.units <= mue.limit:
        return ()
    scope = "per date of service for this patient and provider" if mue.per_day else "per line"
    message = (
        f"Units of {line.code} would exceed the medically unlikely edit of {mue.limit} {scope} "
        f"(MAI {mue.mai}); the whole line is denied. {mue.rationale}"
    ).rstrip()
    # Related: the accepted lines whose units the date of service already counts; a per-line
    # limit (MAI 1) compares the line with itself alone.
    consumed = (line.code,) if mue.per_day else ()
    return (_Failure("MUE_EXCEEDED", message, mue.source, consumed),)
