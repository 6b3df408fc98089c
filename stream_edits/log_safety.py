"""Logging an exception without its message: messages can quote the values that caused them
(a claim id in a KeyError, a field's value in a validation error), and logs must hold no
protected health information. The type and the frames (file, line, function) locate a bug; the
record's topic, partition and offset, logged beside them, find its input."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

# Loggers that format every message they handle at DEBUG, values included (aiokafka logs whole
# fetch responses, record bytes and all; ~10% of the time per event): they are held at WARNING
# whatever the worker's own level.
CHATTY_LOGGERS = ("aiokafka", "faust.topics", "faust.transport", "faust.tables", "mode")


def hold_chatty_loggers() -> None:
    """Hold CHATTY_LOGGERS at WARNING or above."""
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


def exception_summary(error: BaseException) -> str:
    """`Type` and the traceback's frames as `file:line in function`, oldest first; no message,
    no source lines, no local values (chained causes are summarised the same way)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = " > ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
        parts.append(f"{type(current).__name__} at {where or '?'}")
        current = current.__cause__ or current.__context__
    return "; caused by ".join(parts)
