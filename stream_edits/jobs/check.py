"""`stream-edits check`: decide NDJSON claim lines offline with the same engine the stream uses."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from stream_edits.engine import EditEngine, LineDecision
from stream_edits.engine.core import unresolved_reference
from stream_edits.engine.line import decide_line
from stream_edits.formats.reader import InputFormat, read_claims, rejection_lines
from stream_edits.formats.result import UnreadableInput
from stream_edits.gc_pause import gc_paused
from stream_edits.models import ClaimLineEvent, Rejection
from stream_edits.refusal import Refused
from stream_edits.rules.loader import load_rules
from stream_edits.rules.tables import RuleSet
from stream_edits.settings import DependentIdentity


def final_decisions(
    lines: Iterable[bytes], rules: RuleSet, rejects: list[Rejection] | None = None
) -> list[LineDecision]:
    """Feed NDJSON lines in order; return each decided line's final decision, in first-seen order.

    Invalid or conflicting inputs get no decision; they are appended to `rejects` when given,
    followed by an `unresolved_reference` notice for each correction whose original is in none
    of the lines (checked once all are read, so the report does not depend on their order).
    """
    with gc_paused():
        # The engine's state is freed when _decide returns, before the collector resumes: it
        # would otherwise scan all of it once more.
        return _decide(lines, EditEngine(rules), rejects)


def _decide(
    lines: Iterable[bytes], engine: EditEngine, rejects: list[Rejection] | None
) -> list[LineDecision]:
    latest: dict[tuple[str, int], LineDecision] = {}
    unresolved: list[tuple[int, ClaimLineEvent]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        result = decide_line(engine, raw, input_line=number)
        if result.rejection is not None:
            if rejects is not None:
                rejects.append(result.rejection)
            continue
        if result.unresolved is not None:
            unresolved.append((number, result.unresolved))
        for decision in result.decisions:
            latest[(decision.claim_id, decision.line_number)] = decision
    if rejects is not None:
        for number, event in unresolved:
            if not engine.resolves(event):
                notice = unresolved_reference(event)
                rejects.append(notice.model_copy(update={"input_line": number}))
    return list(latest.values())


def read_lines(path: str) -> Iterator[bytes]:
    """The lines of a file, or of standard input for `-`."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as handle:
        yield from handle


def run(
    path: str,
    rules_dir: Path | None = None,
    rejects: Path | None = None,
    input_format: str = InputFormat.NDJSON,
    received_at: str | None = None,
    dependents: DependentIdentity = DependentIdentity.SUBSCRIBER_AND_PATIENT,
) -> int:
    """Run the check command: decisions to stdout, rejects to stderr or `rejects`; exit 0.
    RulesError on bad rules, Refused when `path` cannot be read.

    X12 837P and FHIR input is converted first (`formats.reader`, dependents identified as
    `dependents` says); its refused claims are rejects too.
    """
    rules = load_rules(rules_dir)
    if path != "-" and not Path(path).is_file():
        raise Refused(f"cannot read {path}: no such file")
    refused: list[Rejection] = []
    try:
        with read_claims(path, input_format, received_at, dependents) as claims:
            decisions = final_decisions(claims.lines, rules, refused)
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from error
    except UnreadableInput as error:
        raise Refused(f"cannot read {path}: {error}") from error
    out = sys.stdout.buffer
    out.write(b"".join(orjson.dumps(d.to_wire()) + b"\n" for d in decisions))
    out.flush()
    _write_rejects([*claims.rejections, *map(claims.locate, refused)], rejects)
    return 0


def _write_rejects(refused: list[Rejection], path: Path | None) -> None:
    payload = rejection_lines(refused)
    if path is None:
        sys.stderr.buffer.write(payload)
        sys.stderr.flush()
        return
    target: IO[bytes]
    with open(path, "wb") as target:
        target.write(payload)
