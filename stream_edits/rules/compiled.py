"""The compiled form of a rule set: sorted uint32 columns in one file, memory-mapped and shared.

CMS-sized tables (two million PTP rows) are parsed and validated once into this form and cached on
disk under their content digest. Worker processes map the same file read-only, so the kernel's
page cache holds one copy for all of them; rule objects are built only for the codes the engine
asks about.

Layout: MAGIC, a little-endian u32 header length, the header (JSON: row counts, column offsets,
strings, the distinct codes), padding to 8 bytes, then each column as native u32 values. Codes
are their base-36 value (5 characters of A-Z, 0-9 fit in 26 bits), dates their proleptic
ordinal, NO_DATE none.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from stream_edits.models import RuleSource
from stream_edits.rules.tables import PLACEHOLDER_PRIMARY, AddOnRule, MueRule, PtpRule

FORMAT = 2
MAGIC = b"SERULES\x02"
NO_DATE = 0xFFFFFFFF
_MAX_ROWS = 1 << 24  # row indexes ride in the low bits of the sort key
_CODE = re.compile(r"[A-Z0-9]{5}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Each table's columns; the first is the code the engine queries by, the second (AOC, PTP) the
# partner code. Rows are sorted by (query code, partner code, effective date, input order).
COLUMNS: dict[str, tuple[str, ...]] = {
    "mue": ("code", "limit", "mai", "rationale", "file", "row", "effective", "deletion"),
    "aoc": ("addon", "primary", "edit_type", "file", "row", "effective", "deletion"),
    "ptp": ("column2", "column1", "modifier", "rationale", "file", "row", "effective", "deletion"),
}
PAIRED = {"mue": False, "aoc": True, "ptp": True}
_TABLE_NAMES = {"mue": "MUE", "aoc": "AOC", "ptp": "PTP"}


def code_id(code: str) -> int:
    """A validated 5-character code as its base-36 value."""
    return int(code, 36)


def code_text(value: int) -> str:
    """The code whose base-36 value is `value`."""
    chars = []
    for _ in range(5):
        value, digit = divmod(value, 36)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def day_of(ordinal: int) -> date | None:
    """The date stored as `ordinal` (None for NO_DATE)."""
    return None if ordinal == NO_DATE else date.fromordinal(ordinal)


class Strings:
    """Distinct strings (rationales, file names) numbered in first-seen order."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def number(self, text: str) -> int:
        """The number of `text`, assigned on first sight."""
        found = self.numbers.get(text)
        if found is None:
            found = self.numbers[text] = len(self.numbers)
        return found

    def as_list(self) -> list[str]:
        """The strings in number order."""
        return list(self.numbers)


class TableBuilder:
    """Rows of one table appended as u32 values, then split into columns in query order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._width = len(COLUMNS[kind])
        self._rows = array("I")  # row after row, COLUMNS[kind] values each
        self.columns: dict[str, array[int]] = {}  # filled by sort()

    def __len__(self) -> int:
        return len(self.columns["row"]) if self.columns else len(self._rows) // self._width

    def add(self, values: Sequence[int]) -> None:
        """Append one row (values in COLUMNS order, each below 2**32)."""
        self._rows.extend(values)

    def sort(self) -> None:
        """Split the rows into columns ordered by (query code, partner, effective date, input)."""
        count = len(self)
        if count >= _MAX_ROWS:
            raise ValueError(f"{count} {self.kind} rows: at most {_MAX_ROWS - 1} are supported")
        self.columns = {
            name: self._rows[at :: self._width] for at, name in enumerate(COLUMNS[self.kind])
        }
        self._rows = array("I")
        names = COLUMNS[self.kind]
        key, partner = self.columns[names[0]], self.columns[names[1]]
        effective = self.columns["effective"]
        paired = PAIRED[self.kind]
        keys = [
            ((key[i] << 26 | (partner[i] if paired else 0)) << 44) | effective[i] << 24 | i
            for i in range(count)
        ]
        keys.sort()
        mask = _MAX_ROWS - 1
        order = [k & mask for k in keys]
        del keys
        if order != list(range(count)):
            for name, column in self.columns.items():
                self.columns[name] = array("I", [column[i] for i in order])


def write(
    out: BinaryIO,
    version: str,
    tables: dict[str, TableBuilder],
    codes: str,
    strings: Strings,
    files: Strings,
) -> None:
    """Write the compiled form of sorted `tables` and `codes` (distinct, concatenated) to `out`."""
    offset = 0
    layout: dict[str, Any] = {}
    for kind, builder in tables.items():
        columns = {}
        for name in COLUMNS[kind]:
            columns[name] = offset
            offset += 4 * len(builder)
        layout[kind] = {"rows": len(builder), "columns": columns}
    header = {
        "format": FORMAT,
        "byteorder": sys.byteorder,
        "version": version,
        "tables": layout,
        "data_bytes": offset,
        "codes": codes,
        "strings": strings.as_list(),
        "files": files.as_list(),
    }
    head = orjson.dumps(header)
    out.write(MAGIC + len(head).to_bytes(4, "little") + head)
    out.write(b"\0" * (-(len(MAGIC) + 4 + len(head)) % 8))
    for kind, builder in tables.items():
        for name in COLUMNS[kind]:
            builder.columns[name].tofile(out)


class CompiledFormatError(ValueError):
    """A cache file that is not a complete compiled rule set of this format (rebuilt, not fatal)."""


@dataclass(frozen=True, slots=True)
class _Table:
    rows: int
    columns: dict[str, memoryview]


class CompiledIndex:
    """A RuleIndex over the compiled form (a memory map or bytes); rule objects built per code."""

    def __init__(self, buffer: mmap.mmap | bytes, source: str) -> None:
        view = memoryview(buffer)
        if bytes(view[: len(MAGIC)]) != MAGIC or len(view) < len(MAGIC) + 4:
            raise CompiledFormatError(f"{source}: not a compiled rule set")
        size = int.from_bytes(view[len(MAGIC) : len(MAGIC) + 4], "little")
        start = len(MAGIC) + 4
        try:
            header = orjson.loads(bytes(view[start : start + size]))
        except orjson.JSONDecodeError:
            raise CompiledFormatError(f"{source}: unreadable header") from None
        if header.get("format") != FORMAT or header.get("byteorder") != sys.byteorder:
            raise CompiledFormatError(f"{source}: format {header.get('format')}, not {FORMAT}")
        data = start + size + (-(start + size) % 8)
        end = data + header["data_bytes"]
        if len(view) != end:
            raise CompiledFormatError(f"{source}: {len(view)} bytes, expected {end}")
        self._buffer = buffer  # kept open for the process's life: the views point into it
        self.version: str = header["version"]
        self._strings: list[str] = header["strings"]
        self._files: list[str] = header["files"]
        self._tables: dict[str, _Table] = {}
        for kind, table in header["tables"].items():
            rows = table["rows"]
            columns = {
                name: view[data + at : data + at + 4 * rows].cast("I")
                for name, at in table["columns"].items()
            }
            self._tables[kind] = _Table(rows, columns)
        codes: str = header["codes"]
        # Asked for every line (`mentions`): a set of the some tens of thousands of codes.
        self._codes = frozenset(codes[i : i + 5] for i in range(0, len(codes), 5))
        self._built: dict[tuple[str, str], tuple[Any, ...]] = {}

    @classmethod
    def open(cls, path: Path) -> CompiledIndex:
        """Map the compiled file at `path` read-only (its pages are shared between processes)."""
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CompiledFormatError(f"{path}: empty")
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(buffer, str(path))

    @property
    def size_bytes(self) -> int:
        """The size of the compiled form."""
        return len(self._buffer)

    def row_counts(self) -> dict[str, int]:
        """Rows per table (mue, aoc, ptp)."""
        return {kind: table.rows for kind, table in self._tables.items()}

    def touch_every_page(self) -> None:
        """Read every page of the compiled form: the bench's worst case of residency."""
        hashlib.sha256(self._buffer)

    def _rows(
        self, kind: str, code: str, build: Callable[[dict[str, int]], Any]
    ) -> tuple[Any, ...]:
        key = (kind, code)
        built = self._built.get(key)
        if built is None:
            table = self._tables[kind]
            column = table.columns[COLUMNS[kind][0]]
            value = code_id(code)
            lo = bisect_left(column, value)
            hi = bisect_right(column, value, lo)
            built = tuple(
                build({name: table.columns[name][i] for name in COLUMNS[kind]})
                for i in range(lo, hi)
            )
            self._built[key] = built
        return built

    def _source(self, kind: str, row: dict[str, int]) -> RuleSource:
        return RuleSource(
            table=_TABLE_NAMES[kind],
            file=self._files[row["file"]],
            row=row["row"],
            effective_date=date.fromordinal(row["effective"]),
            deletion_date=day_of(row["deletion"]),
        )

    def _mue(self, row: dict[str, int]) -> MueRule:
        return MueRule(
            code_text(row["code"]),
            row["limit"],
            row["mai"],
            self._strings[row["rationale"]],
            self._source("mue", row),
        )

    def _addon(self, row: dict[str, int]) -> AddOnRule:
        return AddOnRule(
            code_text(row["primary"]),
            code_text(row["addon"]),
            row["edit_type"],
            self._source("aoc", row),
        )

    def _ptp(self, row: dict[str, int]) -> PtpRule:
        return PtpRule(
            code_text(row["column1"]),
            code_text(row["column2"]),
            row["modifier"],
            self._strings[row["rationale"]],
            self._source("ptp", row),
        )

    def mue_rows(self, code: str) -> tuple[MueRule, ...]:
        """MUE rows of `code`."""
        return self._rows("mue", code, self._mue) if _valid(code) else ()

    def addon_rows(self, addon: str) -> tuple[AddOnRule, ...]:
        """Add-on rows of `addon`."""
        return self._rows("aoc", addon, self._addon) if _valid(addon) else ()

    def ptp_rows(self, column2: str) -> tuple[PtpRule, ...]:
        """PTP rows of column-two code `column2`."""
        return self._rows("ptp", column2, self._ptp) if _valid(column2) else ()

    def mentions(self, code: str) -> bool:
        """True when some row names `code`."""
        return code in self._codes

    def all_rows(self) -> tuple[tuple[MueRule, ...], tuple[AddOnRule, ...], tuple[PtpRule, ...]]:
        """Every row, in (query code, partner, effective date) order."""
        return (
            tuple(self._mue(r) for r in self._every("mue")),
            tuple(self._addon(r) for r in self._every("aoc")),
            tuple(self._ptp(r) for r in self._every("ptp")),
        )

    def _every(self, kind: str) -> Iterator[dict[str, int]]:
        table = self._tables[kind]
        for i in range(table.rows):
            yield {name: table.columns[name][i] for name in COLUMNS[kind]}


def _valid(code: str) -> bool:
    return _CODE.fullmatch(code) is not None


def distinct_codes(tables: dict[str, TableBuilder]) -> str:
    """The sorted distinct codes every table names, concatenated; the CCCCC placeholder left out."""
    codes: set[int] = set()
    for kind, builder in tables.items():
        names = COLUMNS[kind]
        codes.update(builder.columns[names[0]])
        if PAIRED[kind]:
            codes.update(builder.columns[names[1]])
    codes.discard(code_id(PLACEHOLDER_PRIMARY))
    return "".join(map(code_text, sorted(codes)))
