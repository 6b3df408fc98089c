"""A broker outage in a few log lines instead of ~75 ERROR lines a second.

While Kafka is away, aiokafka logs every failed retry of the worker's clients at ERROR: the
metadata refresh ("Unable connect to node ...", "Unable to update metadata ..."), the fetcher
("Failed fetch messages ...") and the group coordinator ("Group Coordinator Request failed ...").
`OutageFilter`, on the root handlers, turns those into one warning when the broker goes away, at
most one a minute while it stays away, and one when it answers again: the worker's broker watch
(broker_watch.py) tells it from a real Kafka round trip once the clients have been quiet for a
while. The lines name exception classes only, never a message text, so no member, claim or
group member id reaches the log. Every other record passes untouched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError

log = logging.getLogger(__name__)

REPORT_EVERY_S = 60.0
QUIET_S = 3.0  # no failure for this long (aiokafka retries every 0.1 s while the broker is away)

# Exceptions in an aiokafka record's arguments that mean "could not reach the broker".
CONNECTION_ERRORS = (OSError, KafkaConnectionError, NodeNotReadyError, RequestTimedOutError)
# Consequences of a failure already counted, carrying no exception: dropped while away.
ECHOES = frozenset(
    {
        "Unable to update metadata from %s",
        "Marking the coordinator dead (node %s)for group %s.",
        "Heartbeat session expired - marking coordinator dead",
    }
)
_VERDICT = "outage_log_verdict"  # record attribute: the first handler's verdict, for the others


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def failure_reason(record: logging.LogRecord) -> str | None:
    """A short reason when `record` reports a connection error (among its arguments), else None.

    The reason is the exception's class (and an OSError's errno text): its message can hold
    addresses or ids. A logged traceback (`exc_info`) is left alone: aiokafka logs retries with
    the error as an argument, and a traceback means a routine died, which must be seen.
    """
    for error in record.args if isinstance(record.args, tuple) else ():
        if isinstance(error, CONNECTION_ERRORS):
            if isinstance(error, OSError) and error.errno:
                return f"{type(error).__name__} ({os.strerror(error.errno)})"
            return type(error).__name__
    return None


class Outage:
    """Whether the broker is away, since when and how many failures; the lines to log.

    Thread-safe: aiokafka's consumer logs from Faust's consumer thread. Times are epoch seconds.
    """

    def __init__(self, target: str, report_every_s: float = REPORT_EVERY_S) -> None:
        self.target = target
        self.report_every_s = report_every_s
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0
        self._reported_at = 0.0
        self._reported_failures = 0
        self.last_failure_at = 0.0

    @property
    def away(self) -> bool:
        """True from the first failure until the broker answers again."""
        return self._since is not None

    def failed(self, at: float, reason: str) -> str | None:
        """Count a failure; the line to log (first failure, then at most one a minute) or None."""
        with self._lock:
            self._failures += 1
            self.last_failure_at = max(self.last_failure_at, at)
            if self._since is None:
                self._since = self._reported_at = at
                self._reported_failures = self._failures
                return f"broker {self.target} unreachable since {_stamp(at)}: {reason}; retrying"
            if at - self._reported_at < self.report_every_s:
                return None
            count, span = self._failures - self._reported_failures, at - self._reported_at
            self._reported_at, self._reported_failures = at, self._failures
            return (
                f"broker {self.target} still unreachable: "
                f"{count} failed attempts in the last {span:.0f} s"
            )

    def answered(self, at: float) -> str | None:
        """The broker answered: the line to log when it was away (and no longer is), else None."""
        with self._lock:
            if self._since is None:
                return None
            line = (
                f"broker {self.target} reachable again after {at - self._since:.0f} s "
                f"({self._failures} failed attempts)"
            )
            self._since = None
            self._failures = self._reported_failures = 0
            return line


class OutageFilter(logging.Filter):
    """Drops aiokafka's connection failures, reporting them through `Outage` instead."""

    def __init__(self, outage: Outage, report: Callable[[str], object] = log.warning) -> None:
        super().__init__()
        self.outage = outage
        self.report = report

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a failure (its summary, if due, is reported instead), else True."""
        verdict = record.__dict__.get(_VERDICT)  # one count per record, however many handlers
        if verdict is None:
            verdict = self._judge(record)
            setattr(record, _VERDICT, verdict)
        return bool(verdict)

    def _judge(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] != "aiokafka":  # "aiokafka" is aiokafka.client's logger
            return True
        reason = failure_reason(record)
        if reason is None:
            echo = isinstance(record.msg, str) and record.msg in ECHOES
            return not (echo and self.outage.away)
        line = self.outage.failed(record.created, reason)
        if line is not None:
            self.report(line)
        return False

    def broker_answered(self, at: float) -> None:
        """The broker answered a round trip at `at`: the end of an outage is reported once the
        clients have had no failure for QUIET_S (they may still be failing on stale
        connections)."""
        if self.outage.away and at - self.outage.last_failure_at >= QUIET_S:
            line = self.outage.answered(at)
            if line is not None:
                self.report(line)
