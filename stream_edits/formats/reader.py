"""The one reader `check` and `produce` share: a file (or `-`, stdin) in the format `--format`
names, as the NDJSON claim-line events the engine and the input topic take, and the claims
refused on the way. NDJSON passes through as it is, line by line."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO

import orjson

from stream_edits.formats.result import Conversion, Origin, UnreadableInput
from stream_edits.models import Rejection
from stream_edits.settings import DependentIdentity


class InputFormat(StrEnum):
    """What `--format` accepts."""

    NDJSON = "ndjson"
    X12_837P = "x12-837p"
    FHIR_CLAIM = "fhir-claim"


Converter = Callable[[str, datetime | None, DependentIdentity], Conversion]


@dataclass(slots=True)
class ClaimInput:
    """Claim-line events as NDJSON lines, and the claims a converter refused whole.

    A context manager: leaving it closes the file an NDJSON input is read from.
    """

    lines: Iterable[bytes]
    total_bytes: int | None = None
    rejections: list[Rejection] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)  # per line, for converted input
    handle: IO[bytes] | None = None

    def __enter__(self) -> ClaimInput:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.handle is not None and self.handle is not sys.stdin.buffer:
            self.handle.close()

    def locate(self, rejection: Rejection) -> Rejection:
        """A rejection of line N of converted input, named by its claim and where its line is."""
        if not self.origins or rejection.input_line is None:
            return rejection
        origin = self.origins[rejection.input_line - 1]
        return rejection.model_copy(
            update={
                "input_line": None,
                "claim_id": origin.claim_id,
                "reason": f"{rejection.reason} ({origin.location})",
            }
        )


def read_claims(
    path: str,
    input_format: str = InputFormat.NDJSON,
    received_at: str | None = None,
    dependents: DependentIdentity = DependentIdentity.SUBSCRIBER_AND_PATIENT,
) -> ClaimInput:
    """Open `path` (`-` for stdin) as `input_format`; X12 and FHIR are converted whole here,
    a dependent patient identified as `dependents` says.

    Raises OSError when the file cannot be read, UnreadableInput when it is not in that format
    at all or `received_at` (ISO 8601 with a zone, for converted input only) is no such time.
    """
    fmt = InputFormat(input_format)
    if fmt is InputFormat.NDJSON:
        if received_at is not None:
            raise UnreadableInput("--received-at is for converted input: NDJSON lines carry theirs")
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - ClaimInput
        return ClaimInput(handle, _size(handle), handle=handle)
    when = _received_at(received_at)
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableInput(f"not UTF-8 text (byte {error.start})") from None
    conversion = _converter(fmt)(text, when, dependents)
    lines = [event.model_dump_json(exclude_unset=True).encode() for event in conversion.events]
    return ClaimInput(lines, sum(map(len, lines)), conversion.rejections, conversion.origins)


def _converter(fmt: InputFormat) -> Converter:
    # Each format imports only its own library.
    if fmt is InputFormat.X12_837P:
        from stream_edits.formats.x12_837p import events_from_837p

        return events_from_837p
    from stream_edits.formats.fhir_claim import events_from_fhir

    return events_from_fhir


def _received_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UnreadableInput(f"--received-at {text!r} is not an ISO 8601 time with a zone")
    return when


def _size(handle: IO[bytes]) -> int | None:
    """The file's size, for a progress bar; None for a pipe or a terminal."""
    try:
        info = os.fstat(handle.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def rejection_lines(rejections: Iterable[Rejection]) -> bytes:
    """Rejections as NDJSON, as `check` and `produce` print them."""
    return b"".join(
        orjson.dumps(r.model_dump(mode="json", exclude_none=True)) + b"\n" for r in rejections
    )
