"""Logs without protected health information: the one logging set-up of every entry point, and
exceptions logged by type and frames only.

`configure_logging` holds the loggers that would log values (or floods) at their levels and puts
the given filters on the root handlers; every command calls it (cli.main, the worker's app and
its broker watch, replay, chaos). `exception_summary` logs an exception without its message:
messages can quote the values that caused them (a claim id in a KeyError, a field's value in a
validation error). The type and the frames (file, line, function) locate a bug; the record's
topic, partition and offset, logged beside them, find its input.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

# The least level of loggers that log values: aiokafka and Faust format every message they
# handle at DEBUG, values included (whole fetch responses, record bytes and all; ~10% of the
# time per event); pyx12 logs each X12 finding at ERROR with the element's value (findings are
# reported per claim instead). Held there whatever the worker's own level.
QUIET_LOGGERS: Mapping[str, int] = {
    "aiokafka": logging.WARNING,
    "faust.topics": logging.WARNING,
    "faust.transport": logging.WARNING,
    "faust.tables": logging.WARNING,
    "mode": logging.WARNING,
    "pyx12": logging.CRITICAL + 1,
}


def configure_logging(
    quiet: Mapping[str, int] | None = None, filters: Iterable[logging.Filter] = ()
) -> None:
    """Hold QUIET_LOGGERS (and a command's own `quiet` ones) at their least levels, and put
    `filters` on the root handlers. Idempotent: call it again after a framework replaces the
    handlers or levels (Faust's worker sets up logging after the app is made)."""
    for name, level in {**QUIET_LOGGERS, **(quiet or {})}.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    for log_filter in filters:
        for handler in logging.root.handlers:
            handler.addFilter(log_filter)  # no-op when present


@contextlib.contextmanager
def silenced(name: str) -> Iterator[None]:
    """While inside, logger `name` logs nothing (failures expected meanwhile, e.g. connections
    refused while a broker starts); its level is restored after."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


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
