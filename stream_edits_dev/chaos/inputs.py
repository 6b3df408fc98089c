"""The input of a chaos run: the synthetic workload with poison records mixed in, each record
assigned to one of the producers.

Pure and deterministic (seeded). Every step's slice carries a sprinkle of poison records of every
kind; the poison step adds a burst, oversized records among it. Whether a record is valid is
known by construction (`Record.valid`); the runner checks that `stream-edits check` agrees.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import orjson

from stream_edits_dev.bench.workload import npi_for
from stream_edits_dev.chaos.plan import Fault, Step


class Kind(StrEnum):
    """What a record is."""

    LINE = "line"  # a workload line (originals, replacements, voids, redeliveries)
    UNKNOWN_FIELDS = "unknown-fields"  # a valid line with fields the contract does not name
    BIG_VALID = "big-valid"  # a valid line near the topic's max.message.bytes
    INVALID_JSON = "invalid-json"
    INVALID_LINE = "invalid-line"  # valid JSON that is not a valid claim line
    NULL = "null"  # a null value
    EMPTY = "empty"  # an empty value
    BINARY = "binary"  # bytes that are not text (oversized in the burst)


VALID = frozenset({Kind.LINE, Kind.UNKNOWN_FIELDS, Kind.BIG_VALID})

BURST_SHARE = 0.05  # poison records in the poison step, as a share of its slice's lines
BURST_KINDS = (
    Kind.INVALID_JSON,
    Kind.INVALID_LINE,
    Kind.NULL,
    Kind.EMPTY,
    Kind.BINARY,
    Kind.UNKNOWN_FIELDS,
)
# Each slice carries one of each of these (unknown-field lines twice).
SPRINKLE = (*BURST_KINDS, Kind.UNKNOWN_FIELDS)
BIG_BINARY_BYTES = 900_000
BIG_LINE_ROOM = 32 * 1024  # a big valid line stays this far under max.message.bytes
UNKNOWN_CODES = ("99213", "64461", "64462", "76942", "80053")


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce: its place in the run's input, its value, what it is, who sends it."""

    index: int
    value: bytes | None
    kind: Kind
    producer: str

    @property
    def valid(self) -> bool:
        """True when the record is a claim line `check` decides (it must get a decision)."""
        return self.kind in VALID


class _Poison:
    """Makes poison and unknown-field records from the workload lines around them."""

    def __init__(self, rng: random.Random, max_message_bytes: int) -> None:
        self.rng = rng
        self.max_message_bytes = max_message_bytes
        self.made = 0

    def make(self, kind: Kind, near: Sequence[bytes], big: bool = False) -> bytes | None:
        """A value of `kind`, built from one of the workload lines `near` it."""
        self.made += 1
        rng = self.rng
        base = orjson.loads(rng.choice(near)) if near else {}
        if kind is Kind.NULL:
            return None
        if kind is Kind.EMPTY:
            return b""
        if kind is Kind.BINARY:
            return b"\x89PNG\r\n\x1a\n\x00" + rng.randbytes(BIG_BINARY_BYTES if big else 2048)
        if kind is Kind.INVALID_JSON:
            return self._invalid_json(near)
        if kind is Kind.INVALID_LINE:
            return self._invalid_line(base)
        return self._valid_line(base, big)

    def _invalid_json(self, near: Sequence[bytes]) -> bytes:
        raw = self.rng.choice(near) if near else b'{"claim_id": "C1"}'
        choices = (
            raw[: len(raw) // 2],  # cut off mid-record
            raw + b"}",  # trailing garbage
            b"{" + raw,
            b"\xff\xfe" + raw,  # not UTF-8
            b"claim_id=C1;member_id=M1",
        )
        return self.rng.choice(choices)

    def _invalid_line(self, base: dict[str, object]) -> bytes:
        rng = self.rng
        doc = dict(base)
        choice = rng.randrange(6)
        if choice == 0:
            doc.pop("member_id", None)
        elif choice == 1:
            doc["provider_npi"] = "1234567890"  # fails the Luhn check
        elif choice == 2:
            doc["received_at"] = "2025-06-01T08:00:00"  # no zone
        elif choice == 3:
            doc["units"] = 0
        elif choice == 4:
            return rng.choice((b"[]", b"42", b'"a claim"', b"null", b"{}", b"true"))
        else:
            doc["claim_frequency"] = "9"
        return orjson.dumps(doc)

    def _valid_line(self, base: dict[str, object], big: bool) -> bytes:
        rng = self.rng
        doc: dict[str, object] = {
            "claim_id": f"X{self.made:08d}",
            "line_number": 1,
            "member_id": base.get("member_id", "XM1"),
            "provider_npi": base.get("provider_npi") or npi_for(self.made),
            "date_of_service": base.get("date_of_service", "2025-06-02"),
            "procedure_code": rng.choice(UNKNOWN_CODES),
            "received_at": base.get("received_at", "2025-06-03T09:00:00+00:00"),
            # Fields the contract does not name: accepted, part of the line's identity.
            "payer_ref": f"P-{rng.randrange(10**9)}",
            "x_source": {"system": "clearinghouse-7", "batch": rng.randrange(1000), "tags": []},
        }
        if big:
            room = self.max_message_bytes - BIG_LINE_ROOM - len(orjson.dumps(doc))
            doc["notes"] = "n" * room
        return orjson.dumps(doc)


def build(
    plan: Sequence[Step],
    workload: Sequence[bytes],
    producers: Sequence[str],
    seed: int,
    max_message_bytes: int,
) -> list[list[Record]]:
    """Each step's records in production order: its workload slice, poison mixed in.

    Sprinkled records go anywhere in the slice; the poison step's burst (oversized records among
    it) goes after its moment, so the fault strikes when the burst begins.
    """
    if not producers:
        raise ValueError("no producers")
    rng = random.Random(f"chaos-inputs-{seed}")
    poison = _Poison(rng, max_message_bytes)
    index = 0
    steps: list[list[Record]] = []
    for step in plan:
        lines = list(workload[step.start : step.stop])
        values: list[tuple[bytes | None, Kind]] = [(line, Kind.LINE) for line in lines]
        inserts: list[tuple[int, bytes | None, Kind]] = []
        for kind in SPRINKLE:
            where = rng.randrange(len(values) + 1)
            inserts.append((where, poison.make(kind, lines), kind))
        if step.fault is Fault.POISON:
            first = int(step.moment * len(values))
            burst = [(Kind.BINARY, True), (Kind.BIG_VALID, True)]
            burst += [(rng.choice(BURST_KINDS), False) for _ in range(_burst_size(len(lines)))]
            for kind, big in burst:
                where = rng.randrange(first, len(values) + 1)
                inserts.append((where, poison.make(kind, lines, big), kind))
        # Insert from the back so earlier positions stay where they were drawn.
        for where, value, kind in sorted(inserts, key=lambda item: item[0], reverse=True):
            values.insert(where, (value, kind))
        records = []
        for value, kind in values:
            records.append(Record(index, value, kind, rng.choice(producers)))
            index += 1
        steps.append(records)
    return steps


def _burst_size(lines: int) -> int:
    return max(20, round(lines * BURST_SHARE))
