"""`stream-edits produce`: publish claim lines to the input topic, keyed by member_id."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import TextIO

import orjson
from aiokafka import AIOKafkaProducer

from stream_edits.formats.reader import InputFormat, read_claims, rejection_lines
from stream_edits.formats.result import UnreadableInput
from stream_edits.kafka.admin import require_topic
from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.refusal import Refused
from stream_edits.settings import Settings

IN_FLIGHT = 1000  # sends awaited together: bounds memory, keeps batches full


def member_key(raw: bytes) -> bytes | None:
    """The record key: member_id as UTF-8 (stripped, as the model strips it), else None."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    member = document.get("member_id") if isinstance(document, dict) else None
    if not isinstance(member, str) or not member.strip():
        return None
    return member.strip().encode()


class ProgressBar:
    """A carriage-return bar on a terminal stream; draws nothing when disabled."""

    WIDTH = 30
    INTERVAL_S = 0.1

    def __init__(self, total_bytes: int | None, enabled: bool, stream: TextIO) -> None:
        self.total_bytes = total_bytes
        self.enabled = enabled
        self.stream = stream
        self._drawn_at = 0.0
        self._width = 0

    def update(self, done_bytes: int, lines: int) -> None:
        """Redraw, at most every INTERVAL_S."""
        now = time.monotonic()
        if not self.enabled or now - self._drawn_at < self.INTERVAL_S:
            return
        self._drawn_at = now
        if self.total_bytes:
            fraction = min(done_bytes / self.total_bytes, 1.0)
            filled = int(fraction * self.WIDTH)
            text = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction:4.0%}  {lines} lines"
        else:
            text = f"{lines} lines"
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar so the next line starts clean."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


async def publish(settings: Settings, lines: Iterable[bytes], bar: ProgressBar) -> int:
    """Publish every non-blank line's bytes (line ending removed); the number published."""
    # Checked first: a broker with auto.create.topics.enable would otherwise create the topic on
    # the first send with its own defaults (1 partition, no retention setting), not the contract's.
    await require_topic(settings, settings.input_topic, "Write")
    # Idempotence with acks=all: broker-side dedup of retried batches keeps each partition's
    # records once and in send order, so a member's lines reach the worker in file order.
    producer = AIOKafkaProducer(
        **kafka_client_kwargs(settings), linger_ms=5, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[object]] = []
        done_bytes = published = 0
        for raw in lines:
            done_bytes += len(raw)
            value = raw.rstrip(b"\r\n")
            if not value.strip():
                continue
            pending.append(await producer.send(settings.input_topic, value, key=member_key(value)))
            published += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
            bar.update(done_bytes, published)
        await asyncio.gather(*pending)
        return published
    finally:
        await producer.stop()


def run(
    settings: Settings,
    path: str,
    progress: bool = True,
    input_format: str = InputFormat.NDJSON,
    received_at: str | None = None,
) -> int:
    """Publish the file at `path` (`-` = stdin) to the input topic; exit code.

    NDJSON lines are sent as they are, unvalidated: the worker owns validation. A line whose
    member_id cannot be read (malformed JSON, missing or empty member_id) is still published,
    with a null key, so that it reaches the worker's dead-letter path rather than vanishing here.
    X12 837P and FHIR input is converted first (`formats.reader`, dependents identified as
    settings.dependent_identity says): its claims refused whole are
    printed to stderr as JSON lines (as `check` prints rejects) and the others published.
    Exit 0 when all lines are acknowledged; Refused when the file cannot be read, Kafka's errors
    as they are (the command line words them).
    """
    try:
        opened = read_claims(path, input_format, received_at, settings.dependent_identity)
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from error
    except UnreadableInput as error:
        raise Refused(f"cannot read {path}: {error}") from error
    if opened.rejections:
        sys.stderr.buffer.write(rejection_lines(opened.rejections))
        sys.stderr.flush()
    with opened as claims:
        bar = ProgressBar(claims.total_bytes, progress and sys.stderr.isatty(), sys.stderr)
        try:
            with quiet_bootstrap_errors():
                published = asyncio.run(publish(settings, claims.lines, bar))
        finally:
            bar.clear()
    refused = f"; {len(claims.rejections)} claims refused" if claims.rejections else ""
    print(f"published {published} lines to {settings.input_topic}{refused}", file=sys.stderr)
    return 0
