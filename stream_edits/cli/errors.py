"""The one handler of a command's failure: one line on stderr, `stream-edits COMMAND: why`, and
an exit code. Library functions raise; only the command line prints their failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from stream_edits.settings import Settings


class Kind(Enum):
    """What went wrong, as far as the exit code goes."""

    USAGE = "usage"  # asked what cannot be done: an option, an input, bad rules
    KAFKA = "kafka"  # the broker refused, or could not be reached


@dataclass(frozen=True)
class ExitCodes:
    """A command's exit code for each kind of failure (its documented contract)."""

    usage: int = 2
    kafka: int = 1

    def of(self, kind: Kind) -> int:
        """The exit code for `kind`."""
        return self.usage if kind is Kind.USAGE else self.kafka


def described(
    error: BaseException, kafka_settings: Callable[[], Settings]
) -> tuple[Kind, str] | None:
    """The kind of a known failure and its one line (Kafka's explained with `kafka_settings()`,
    which may probe the broker once); None for an error the handler does not know."""
    from stream_edits.refusal import Refused

    if isinstance(error, Refused):
        return Kind.USAGE, str(error)
    from stream_edits.rules.loader import RulesError

    if isinstance(error, RulesError):
        return Kind.USAGE, f"bad rules: {error}"
    if isinstance(error, BrokenPipeError):
        return None  # the reader went away: `main` ends quietly
    if isinstance(error, OSError) and error.filename is not None:
        return Kind.USAGE, f"{error.filename}: {error.strerror or error}"
    if isinstance(error, (OSError, *_kafka_errors())):
        from stream_edits.kafka.errors import explain

        return Kind.KAFKA, explain(error, kafka_settings())
    return None


def _kafka_errors() -> tuple[type[BaseException], ...]:
    """Kafka's errors and the project's Kafka refusals (imported only when a command failed)."""
    from aiokafka.errors import KafkaError
    from confluent_kafka import KafkaException

    from stream_edits.kafka.admin import TopicsError
    from stream_edits.kafka.errors import AccessDenied
    from stream_edits.kafka.preflight import PreflightError

    return KafkaError, KafkaException, AccessDenied, TopicsError, PreflightError


def reported(
    command: str,
    settings: Settings,
    action: Callable[[], int],
    *,
    codes: ExitCodes = ExitCodes(),
    kafka_prefix: str = "",
    kafka_settings: Callable[[], Settings] | None = None,
) -> int:
    """Run `action` (a command's work) and return its exit code; a known failure becomes one
    line on stderr and `codes`' exit code. `kafka_prefix` starts a Kafka failure's line;
    `kafka_settings` gives the settings the broker was reached with (default `settings`)."""
    try:
        return action()
    except Exception as error:
        found = described(error, kafka_settings or (lambda: settings))
        if found is None:
            raise
        kind, message = found
        prefix = kafka_prefix if kind is Kind.KAFKA else ""
        print(f"stream-edits {command}: {prefix}{message}", file=sys.stderr)
        return codes.of(kind)
