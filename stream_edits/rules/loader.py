"""Load CMS-layout MUE, add-on and PTP tables from a rules directory and validate every row."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from itertools import chain, zip_longest
from operator import itemgetter
from pathlib import Path, PurePath
from typing import Any

from pydantic import ValidationError

from stream_edits.gc_pause import gc_paused
from stream_edits.models import EDIT_CODES, AdjustmentCodes, EditCode
from stream_edits.rules import compiled
from stream_edits.rules.compiled import NO_DATE, PAIRED, CompiledIndex, Strings, TableBuilder
from stream_edits.rules.tables import (
    ADDON_TYPE3_POLICIES,
    DEFAULT_ADJUSTMENT_CODES,
    DEFAULT_BYPASS_MODIFIERS,
    PLACEHOLDER_PRIMARY,
    AddOnType3,
    RuleSet,
)
from stream_edits.settings import default_home

logger = logging.getLogger(__name__)

DEFAULT_DIRECTORY = Path(__file__).with_name("default")
MANIFEST = "manifest.toml"

# Directories whose files total less than this compile in memory at each start (milliseconds);
# larger ones are compiled once into the on-disk cache and memory-mapped.
CACHE_THRESHOLD_BYTES = 1 << 20

_CODE = re.compile(r"[A-Z0-9]{5}")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")
_MAI = re.compile(r"([123])(?!\d)")  # "2 Date of Service Edit: Policy" -> 2
_ENTRY_KEYS = {
    "mue": ({"file", "effective_date"}, {"deletion_date"}),
    "addon": ({"file"}, set()),
    "ptp": ({"file"}, set()),
}
_TOP_KEYS = ("bypass_modifiers", "adjustment_codes", "addon_type3", *_ENTRY_KEYS)
_TABLE_KINDS = {"mue": "mue", "addon": "aoc", "ptp": "ptp"}  # manifest kind -> compiled table

_Cells = tuple[str, ...]
_Values = tuple[int, ...]


class RulesError(ValueError):
    """A rules directory that cannot be loaded: names the file, the row if any, and the problem."""

    def __init__(self, file: str, problem: str, row: int | None = None) -> None:
        where = file if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.row = row
        self.problem = problem


@dataclass(frozen=True, slots=True)
class _Entry:
    """One file listed in the manifest."""

    kind: str
    file: str
    effective_date: date | None = None
    deletion_date: date | None = None


@dataclass(frozen=True, slots=True)
class _Column:
    """A column found by its header text (normalized, then fully matched by `pattern`)."""

    label: str
    pattern: re.Pattern[str]
    required: bool = True


def _col(label: str, pattern: str, required: bool = True) -> _Column:
    return _Column(label, re.compile(pattern), required)


# The first two columns of each layout are its anchors: the header row is the first row with both.
_MUE_COLUMNS = (
    _col("HCPCS/CPT Code", r"(hcpcs |cpt )*(hcpcs|cpt) code"),
    _col("... Services MUE Values", r"(.* )?mue values?"),
    _col("MUE Adjudication Indicator", r"(mue )?adjudication indicator( .*)?"),
    _col("MUE Rationale", r"(mue )?rationale", required=False),
)
_AOC_COLUMNS = (
    _col("Primary Code", r"primary (hcpcs |cpt )*code"),
    _col("Add-on Code", r"(add on|aoc) (hcpcs |cpt )*code|aoc"),
    _col("AOC Edit Type", r"(aoc )?(edit )?type"),
    _col("Primary Code Deletion Date", r"primary code deletion date"),
    _col("AOC Deletion Date", r"(aoc|add on code) deletion date"),
    _col("Edit Effective Date", r"(aoc )?edit effective date"),
    _col("Edit Deletion Date", r"(aoc )?edit deletion date"),
)
_PTP_COLUMNS = (
    _col("Column 1", r"column ?1"),
    _col("Column 2", r"column ?2"),
    _col("Effective Date", r"effective( .*)?"),
    _col("Deletion Date", r"deletion( .*)?"),
    _col("Modifier", r"modifier( .*)?"),
    _col("PTP Edit Rationale", r"(ptp )?(edit )?rationale( .*)?", required=False),
)
# Spellings seen in CMS headers ("AOC_DEL_DT (Julian)", "Add-On Code") reduced to one vocabulary.
_WORDS = {"del": "deletion", "eff": "effective", "dt": "date", "addon": "add on", "julian": ""}


def load_rules(directory: Path | None = None, cache_dir: Path | None = None) -> RuleSet:
    """Load and validate the rules directory (None: the shipped default tables).

    Large directories are compiled once into `cache_dir` (default: default_cache_dir()) under
    their content digest and memory-mapped from there; a changed file changes the digest.
    Raises RulesError naming the file and row of the first problem found.
    """
    directory = DEFAULT_DIRECTORY if directory is None else Path(directory)
    try:
        manifest_bytes = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise RulesError(MANIFEST, f"not found in {directory}") from None
    manifest = _parse_manifest(manifest_bytes)
    digest, size = _fingerprint(directory, manifest_bytes, manifest.entries)
    if size < CACHE_THRESHOLD_BYTES:
        index = _compile_in_memory(directory, manifest_bytes, manifest.entries)
    else:
        index = _cached(directory, manifest_bytes, manifest.entries, digest, cache_dir)
    logger.info("loaded rules %s from %s", index.version, directory)
    return RuleSet(
        index, manifest.bypass, index.version, manifest.adjustments, manifest.addon_type3
    )


def default_cache_dir() -> Path:
    """Where compiled rule sets are kept unless told (Settings.rules_cache_dir's default)."""
    return default_home() / "rules"


def _fingerprint(directory: Path, manifest_bytes: bytes, entries: list[_Entry]) -> tuple[str, int]:
    """The content digest (hex) of the manifest and its files, read in chunks; their total size."""
    digest = hashlib.sha256(manifest_bytes)
    total = 0
    for entry in entries:
        path = directory / entry.file
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                digest.update(f"\0{entry.file}\0{size}\0".encode())
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            raise RulesError(entry.file, f"listed in {MANIFEST} but not in {directory}") from None
        except OSError as exc:
            raise RulesError(entry.file, f"unreadable: {exc.strerror}") from None
        total += size
    return digest.hexdigest(), total


def _cached(
    directory: Path,
    manifest_bytes: bytes,
    entries: list[_Entry],
    digest: str,
    cache_dir: Path | None,
) -> CompiledIndex:
    """The compiled form from the cache, compiling it there first when it is missing."""
    folder = default_cache_dir() if cache_dir is None else cache_dir
    path = folder / f"{digest}.v{compiled.FORMAT}.rules"
    try:
        return CompiledIndex.open(path)
    except OSError:
        pass  # not compiled yet (or the cache is unreachable: compiling below says so)
    except compiled.CompiledFormatError as exc:
        logger.warning("rebuilding the compiled rules cache: %s", exc)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written beside its final name and renamed: a process starting meanwhile never maps a
        # half-written file, and two compiling at once both rename a complete one.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as out:
            try:
                written = _compile(directory, manifest_bytes, entries, out)
            except BaseException:
                os.unlink(out.name)
                raise
        final = folder / f"{written}.v{compiled.FORMAT}.rules"
        os.chmod(out.name, 0o644)  # workers of other users on the host may map it too
        os.replace(out.name, final)
    except OSError as exc:
        logger.warning("rules cache %s not writable (%s): compiling in memory", folder, exc)
        return _compile_in_memory(directory, manifest_bytes, entries)
    logger.info("compiled rules into %s", final)
    return CompiledIndex.open(final)


def _compile_in_memory(
    directory: Path, manifest_bytes: bytes, entries: list[_Entry]
) -> CompiledIndex:
    out = io.BytesIO()
    _compile(directory, manifest_bytes, entries, out)
    return CompiledIndex(out.getvalue(), "memory")


def _compile(directory: Path, manifest_bytes: bytes, entries: list[_Entry], out: Any) -> str:
    """Parse and validate every row, then write the compiled form; the content digest (hex)."""
    digest = hashlib.sha256(manifest_bytes)
    tables = {kind: TableBuilder(kind) for kind in compiled.COLUMNS}
    strings, files = Strings(), Strings()
    with gc_paused():
        for entry in entries:
            data = _read(directory, entry.file)
            digest.update(f"\0{entry.file}\0{len(data)}\0".encode())
            digest.update(data)
            file_number = files.number(entry.file)
            columns: Sequence[_Column]
            build: Callable[[int, _Cells], _Values]
            if entry.kind == "mue":
                columns, build = _MUE_COLUMNS, _mue_builder(entry, file_number, strings)
            elif entry.kind == "addon":
                columns, build = _AOC_COLUMNS, partial(_addon_values, file_number=file_number)
            else:
                columns, build = (
                    _PTP_COLUMNS,
                    partial(_ptp_values, file_number=file_number, strings=strings),
                )
            _rows(entry.file, data, columns, build, tables[_TABLE_KINDS[entry.kind]])
            del data
        for kind, builder in tables.items():
            builder.sort()
            _reject_overlaps(kind, builder, files.as_list())
        hexdigest = digest.hexdigest()
        counts = ", ".join(f"{len(b):,} {k.upper()}" for k, b in tables.items())
        logger.info("compiling rules %s: %s rows", hexdigest[:12], counts)
        compiled.write(out, hexdigest[:12], tables, compiled.distinct_codes(tables), strings, files)
    return hexdigest


@dataclass(frozen=True, slots=True)
class _Manifest:
    bypass: frozenset[str]
    adjustments: _Adjustments
    addon_type3: AddOnType3
    entries: list[_Entry]


_Adjustments = tuple[tuple[EditCode, AdjustmentCodes], ...]


def _parse_manifest(raw: bytes) -> _Manifest:
    try:
        manifest = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(MANIFEST, f"not valid TOML: {exc}") from None
    unknown = sorted(set(manifest) - set(_TOP_KEYS))
    if unknown:
        raise RulesError(MANIFEST, f"unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
    bypass = manifest.get("bypass_modifiers", sorted(DEFAULT_BYPASS_MODIFIERS))
    if not isinstance(bypass, list) or not all(
        isinstance(m, str) and _MODIFIER.fullmatch(m) for m in bypass
    ):
        raise RulesError(MANIFEST, "bypass_modifiers must be a list of 2-character modifiers")
    entries = [
        _parse_entry(kind, number, table)
        for kind in _ENTRY_KEYS
        for number, table in enumerate(_tables(manifest, kind), start=1)
    ]
    if not entries:
        raise RulesError(MANIFEST, "lists no [[mue]], [[addon]] or [[ptp]] files")
    type3 = manifest.get("addon_type3", "listed")
    if type3 not in ADDON_TYPE3_POLICIES:
        choices = " or ".join(repr(p) for p in ADDON_TYPE3_POLICIES)
        raise RulesError(MANIFEST, f"addon_type3 must be {choices}, not {type3!r}")
    adjustments = _adjustment_codes(manifest.get("adjustment_codes", {}))
    return _Manifest(frozenset(bypass), adjustments, type3, entries)


def _adjustment_codes(table: Any) -> _Adjustments:
    """The defaults, with the edits the manifest's [adjustment_codes] table names replaced."""
    if not isinstance(table, dict):
        raise RulesError(MANIFEST, "adjustment_codes must be a table: [adjustment_codes]")
    unknown = sorted(set(table) - set(EDIT_CODES))
    if unknown:
        known = ", ".join(EDIT_CODES)
        problem = f"adjustment_codes: unknown edit {unknown[0]!r} (known: {known})"
        raise RulesError(MANIFEST, problem)
    codes = dict(DEFAULT_ADJUSTMENT_CODES)
    for edit, value in table.items():
        try:
            codes[edit] = AdjustmentCodes.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise RulesError(MANIFEST, f"adjustment_codes.{edit}: {problems}") from None
    return tuple(codes.items())


def _tables(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    tables = manifest.get(kind, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulesError(MANIFEST, f"{kind} must be written as [[{kind}]] tables")
    return tables


def _parse_entry(kind: str, number: int, table: dict[str, Any]) -> _Entry:
    where = f"[[{kind}]] entry {number}"
    file = table.get("file")
    if not isinstance(file, str) or not file.strip():
        raise RulesError(MANIFEST, f"{where}: 'file' must name a file in the rules directory")
    where = f"{where} ({file})"
    required, optional = _ENTRY_KEYS[kind]
    unknown = sorted(set(table) - required - optional)
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise RulesError(MANIFEST, f"{where}: unknown key {unknown[0]!r} (known: {known})")
    missing = sorted(required - set(table))
    if missing:
        raise RulesError(MANIFEST, f"{where}: missing {missing[0]!r}")
    dates: dict[str, date | None] = {}
    for key in ("effective_date", "deletion_date"):
        value = table.get(key)
        # A TOML datetime is a date subclass; a window boundary must be a plain date.
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise RulesError(MANIFEST, f"{where}: {key} must be a TOML date like 2016-01-01")
        dates[key] = value
    effective, deletion = dates["effective_date"], dates["deletion_date"]
    if effective is not None and deletion is not None and deletion < effective:
        raise RulesError(MANIFEST, f"{where}: deletion_date {deletion} is before {effective}")
    return _Entry(kind, file, effective, deletion)


def _read(directory: Path, file: str) -> bytes:
    try:
        return (directory / file).read_bytes()
    except FileNotFoundError:
        raise RulesError(file, f"listed in {MANIFEST} but not in {directory}") from None
    except OSError as exc:
        raise RulesError(file, f"unreadable: {exc.strerror}") from None


def _rows(
    file: str,
    data: bytes,
    columns: Sequence[_Column],
    build: Callable[[int, _Cells], _Values],
    table: TableBuilder,
) -> None:
    """Add one row of values per data row; a bad cell becomes a RulesError naming file and row."""
    add = table.add
    for row, cells in _table(file, data, columns):
        try:
            add(build(row, cells))
        except ValueError as exc:
            raise RulesError(file, str(exc), row) from None


def _mue_builder(
    entry: _Entry, file_number: int, strings: Strings
) -> Callable[[int, _Cells], _Values]:
    # CMS MUE files are quarterly with no per-row dates: the manifest entry gives the window.
    assert entry.effective_date is not None  # required for [[mue]] by _parse_entry
    effective = entry.effective_date.toordinal()
    deletion = NO_DATE if entry.deletion_date is None else entry.deletion_date.toordinal()
    return partial(
        _mue_values,
        file_number=file_number,
        strings=strings,
        effective=effective,
        deletion=deletion,
    )


def _mue_values(
    row: int, cells: _Cells, *, file_number: int, strings: Strings, effective: int, deletion: int
) -> _Values:
    code, value, mai, rationale = cells
    return (
        _code_value("HCPCS/CPT Code", code),
        _units(value),
        _mai(mai),
        strings.number(rationale),
        file_number,
        row,
        effective,
        deletion,
    )


def _addon_values(row: int, cells: _Cells, *, file_number: int) -> _Values:
    primary, addon, edit_type, primary_deletion, addon_deletion, effective, deletion = cells
    primary_value = _code_value("Primary Code", primary)
    addon_value = _code_value("Add-on Code", addon)
    kind = _choice("AOC Edit Type", edit_type, "123")
    if primary == PLACEHOLDER_PRIMARY and kind == 1:
        raise ValueError(f"placeholder primary {PLACEHOLDER_PRIMARY} on a Type 1 row")
    start = _required_date("Edit Effective Date", effective, julian=True)
    # The edit stops applying at the first of: primary deleted, add-on deleted, edit deleted.
    ends = [
        (day, label)
        for label, text in (
            ("Primary Code Deletion Date", primary_deletion),
            ("AOC Deletion Date", addon_deletion),
            ("Edit Deletion Date", deletion),
        )
        if (day := _date(label, text, julian=True)) is not None
    ]
    end, end_label = min(ends) if ends else (None, "")
    if end is not None and end < start:
        raise ValueError(f"{end_label} {end} is before Edit Effective Date {start}")
    end_value = NO_DATE if end is None else end.toordinal()
    return (addon_value, primary_value, kind, file_number, row, start.toordinal(), end_value)


def _ptp_values(row: int, cells: _Cells, *, file_number: int, strings: Strings) -> _Values:
    column1, column2, effective, deletion, modifier, rationale = cells
    column1_value = _code_value("Column 1", column1)
    column2_value = _code_value("Column 2", column2)
    start = _required_date("Effective Date", effective)
    end = _date("Deletion Date", deletion)
    if end is not None and end < start:
        raise ValueError(f"Deletion Date {end} is before Effective Date {start}")
    indicator = _choice("Modifier indicator", modifier, "019")
    return (
        column2_value,
        column1_value,
        indicator,
        strings.number(rationale),
        file_number,
        row,
        start.toordinal(),
        NO_DATE if end is None else end.toordinal(),
    )


@lru_cache(maxsize=1 << 16)  # a CMS table names some tens of thousands of codes, many times
def _code_value(label: str, text: str) -> int:
    return compiled.code_id(_code(label, text))


def _code(label: str, text: str) -> str:
    if not _CODE.fullmatch(text):
        raise ValueError(f"{label} {text!r} is not a 5-character code (A-Z, 0-9)")
    return text


def _units(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"MUE value {text!r} is not a non-negative whole number")
    if len(text) > 9:
        raise ValueError(f"MUE value {text!r} is not below 1,000,000,000")
    return int(text)


def _mai(text: str) -> int:
    match = _MAI.match(text)
    if match is None:
        raise ValueError(f"MUE Adjudication Indicator {text!r} does not start with 1, 2 or 3")
    return int(match.group(1))


def _choice(label: str, text: str, allowed: str) -> int:
    if len(text) != 1 or text not in allowed:
        raise ValueError(f"{label} {text!r} is not one of {', '.join(allowed)}")
    return int(text)


def _required_date(label: str, text: str, julian: bool = False) -> date:
    day = _date(label, text, julian)
    if day is None:
        raise ValueError(f"{label} is empty")
    return day


def _date(label: str, text: str, julian: bool = False) -> date | None:
    """A YYYYMMDD cell (or YYYYDDD where `julian`); None for blank or "*" (no date)."""
    if text in ("", "*"):
        return None
    day = _parse_date(text, julian)
    if day is None:
        raise ValueError(f"{label} {text!r} is not a date (YYYYMMDD)")
    return day


@lru_cache(maxsize=8192)  # a table has few distinct dates and many rows
def _parse_date(text: str, julian: bool) -> date | None:
    if not (text.isascii() and text.isdigit()):
        return None
    year = int(text[:4])
    try:
        if len(text) == 8:
            return date(year, int(text[4:6]), int(text[6:]))
        if julian and len(text) == 7 and 1 <= int(text[4:]) <= 366:
            day = date(year, 1, 1) + timedelta(days=int(text[4:]) - 1)
            return day if day.year == year else None
    except ValueError:
        pass
    return None


def _table(file: str, data: bytes, columns: Sequence[_Column]) -> Iterator[tuple[int, _Cells]]:
    """Yield (row, cells in `columns` order) for each data row below the header.

    The header is the first row holding both anchor columns; rows right below it with empty
    anchor cells continue it (the CMS PTP header spreads its legends over several rows).
    """
    records = _records(file, data)
    anchors = columns[:2]
    header_row, header = _find_header(file, records, anchors)
    anchor_at = [_find(header, a) for a in anchors]
    for first in records:
        cells = first[1]
        if any(cells[i] for i in anchor_at if i is not None and i < len(cells)):
            break
        pairs = zip_longest(header, cells, fillvalue="")
        header = [f"{h} {_normalize(c)}".strip() for h, c in pairs]
    else:
        _resolve(file, header_row, header, columns)
        return
    width = len(header)
    found = _resolve(file, header_row, header, columns)
    # A missing optional column reads the blank cell padded in at index `width`.
    pick = itemgetter(*(width if i is None else i for i in found))
    for row, cells in chain([first], records):
        # Rows may leave off trailing empty cells, or carry stray ones past the header.
        yield row, pick(cells[:width] + [""] * (width + 1 - min(len(cells), width)))


def _find_header(
    file: str, records: Iterator[tuple[int, list[str]]], anchors: Sequence[_Column]
) -> tuple[int, list[str]]:
    for row, cells in records:
        header = [_normalize(cell) for cell in cells]
        if all(_find(header, a) is not None for a in anchors):
            return row, header
    expected = " and ".join(repr(a.label) for a in anchors)
    raise RulesError(file, f"no header row (expected cells {expected})")


def _resolve(
    file: str, header_row: int, header: list[str], columns: Sequence[_Column]
) -> list[int | None]:
    found = [_find(header, c) for c in columns]
    for column, index in zip(columns, found, strict=True):
        if index is None and column.required:
            raise RulesError(file, f"header has no {column.label!r} column", header_row)
    return found


def _find(header: list[str], column: _Column) -> int | None:
    return next((i for i, h in enumerate(header) if column.pattern.fullmatch(h)), None)


def _normalize(cell: str) -> str:
    words = (_WORDS.get(w, w) for w in re.findall(r"[a-z0-9]+", cell.lower()))
    return " ".join(w for w in words if w)


def _records(file: str, data: bytes) -> Iterator[tuple[int, list[str]]]:
    """Yield (physical line where the record starts, stripped cells), skipping blank rows."""
    suffix = PurePath(file).suffix.lower()
    if suffix == ".csv":
        dialect: dict[str, Any] = {}
    elif suffix in (".txt", ".tsv"):
        # CMS text tables are plain tab-separated lines: quotes are text, never delimiters.
        dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    else:
        raise RulesError(file, "unknown file type: use .csv (comma) or .txt/.tsv (tab-separated)")
    reader = csv.reader(io.StringIO(_decode(data), newline=""), **dialect)
    start = 1
    try:
        for cells in reader:
            row, start = start, reader.line_num + 1
            stripped = [cell.strip() for cell in cells]
            if any(stripped):
                yield row, stripped
    except csv.Error as exc:
        raise RulesError(file, f"unreadable: {exc}", start) from None


def _decode(data: bytes) -> str:
    # CMS files are Windows-1252 (the CPT notice carries a raw 0xAE); payers' exports are UTF-8.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _reject_overlaps(kind: str, table: TableBuilder, files: list[str]) -> None:
    """Raise when two rows for the same code (MUE) or pair (AOC, PTP) share an in-force date.

    `table` is sorted by (code, partner, effective date), so each row is checked against the
    previous row of its key that is ever in force.
    """
    names = compiled.COLUMNS[kind]
    key, partner = table.columns[names[0]], table.columns[names[1] if PAIRED[kind] else names[0]]
    effective, deletion = table.columns["effective"], table.columns["deletion"]
    previous_key: tuple[int, int] | None = None
    previous = 0
    for i, this_key in enumerate(zip(key, partner, strict=True)):
        if effective[i] == deletion[i]:
            continue  # never in force
        if this_key == previous_key and (
            deletion[previous] == NO_DATE or effective[i] < deletion[previous]
        ):
            raise RulesError(
                files[table.columns["file"][i]],
                f"{_what(kind, this_key)} is already in force on "
                f"{date.fromordinal(effective[i])} ({files[table.columns['file'][previous]]}, "
                f"row {table.columns['row'][previous]}): date windows overlap",
                table.columns["row"][i],
            )
        previous_key, previous = this_key, i


def _what(kind: str, key: tuple[int, int]) -> str:
    code, partner = (compiled.code_text(value) for value in key)
    if kind == "mue":
        return f"MUE {code}"
    return f"{kind.upper()} {partner}/{code}"  # primary/add-on, column 1/column 2
