"""`stream-edits tail`: print decisions (or with `--dlq` dead letters) as they arrive."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from stream_edits.kafka.admin import require_topic
from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.models import DeadLetterHeaders, Decision
from stream_edits.settings import Settings

POLL_S = 1.0


def mask_member(member_id: str) -> str:
    """The member id with all but its last 2 characters hidden (all of it when short)."""
    return "***" + member_id[-2:] if len(member_id) > 4 else "***"


def format_decision(decision: Decision) -> str:
    """One readable line: line identity, code, status, revision, edits, masked member, DOS."""
    line = f"{decision.claim_id}#{decision.line_number}"
    edits = ",".join(edit.code for edit in decision.edits) or "-"
    return (
        f"{line:<12}  {decision.procedure_code:<5}  {decision.status.value.upper():<6} "
        f"rev {decision.revision:<3}  {edits:<21}  "
        f"(member {mask_member(decision.member_id)}, DOS {decision.date_of_service.isoformat()})"
    )


def _dead_letter(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any] | None:
    """A dead letter as a JSON-ready dict: its context from the headers, its bytes as text when
    they are UTF-8 (else base64); None when the headers are not a dead letter's."""
    try:
        context = DeadLetterHeaders.from_headers(record.headers)
    except (ValidationError, UnicodeDecodeError):
        return None
    value = record.value
    out: dict[str, Any] = {
        "source": {
            "topic": context.topic,
            "partition": context.partition,
            "offset": context.offset,
        },
        "reason": context.reason.value,
        "message": context.exception_message,
        "errors": orjson.loads(context.errors),
        "failed_at": context.failed_at.isoformat(),
        "key_masked": None
        if record.key is None
        else mask_member(record.key.decode(errors="replace")),
        "value_bytes": None if value is None else len(value),
    }
    if value is not None:
        try:
            out["value_text"] = value.decode()
        except UnicodeDecodeError:
            out["value_base64"] = base64.b64encode(value).decode()
    return out


def format_dead_letter(letter: dict[str, Any]) -> str:
    """One readable line: where the record was, why it was refused, the fields, its size."""
    source = letter["source"]
    where = f"{source['topic']}[{source['partition']}]@{source['offset']}"
    fields = ",".join(e["field"] for e in letter["errors"]) or "-"
    size = "null value" if letter["value_bytes"] is None else f"{letter['value_bytes']} bytes"
    key = letter["key_masked"] or "no key"
    return f"{where:<24}  {letter['reason']:<22}  {fields:<30}  ({size}, key {key})"


def _render(record: ConsumerRecord[bytes, bytes], as_json: bool, dlq: bool = False) -> bytes | None:
    """The output line for a record; None for tombstones and values that are not decisions."""
    if dlq:
        letter = _dead_letter(record)
        if letter is None:
            _not_a(record, "dead letter")
            return None
        text = orjson.dumps(letter) if as_json else format_dead_letter(letter).encode()
        return text + b"\n"
    if record.value is None:
        return None
    if as_json:
        value: bytes = record.value
        return value + b"\n"
    try:
        decision = Decision.model_validate_json(record.value)
    except ValidationError:
        _not_a(record, "decision")
        return None
    return format_decision(decision).encode() + b"\n"


def _not_a(record: ConsumerRecord[bytes, bytes], what: str) -> None:
    print(
        f"stream-edits tail: partition {record.partition} offset {record.offset} is not a {what}",
        file=sys.stderr,
    )


async def follow(
    settings: Settings,
    out: IO[bytes],
    *,
    as_json: bool,
    from_beginning: bool,
    idle_exit: float | None,
    limit: int | None,
    dlq: bool = False,
) -> int:
    """Write decisions (dead letters with `dlq`) to `out` until `limit` are written or
    `idle_exit` s pass without any."""
    topic = settings.dlq_topic if dlq else settings.output_topic
    # Checked first: assigning a missing topic would let a broker with auto.create.topics.enable
    # create it with its defaults (delete policy, 1 partition) instead of the contract's.
    count = await require_topic(settings, topic, "Read")
    # No group: nothing is committed and nobody else's partitions are rebalanced away.
    # The reset an assignment starts can finish after a seek and undo it: with "earliest" a late
    # reset cannot skip what --from-beginning asks for.
    consumer = AIOKafkaConsumer(
        **kafka_client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        written = 0
        last_seen = time.monotonic()
        while limit is None or written < limit:
            wait_s = POLL_S
            if idle_exit is not None:
                wait_s = min(wait_s, max(0.0, last_seen + idle_exit - time.monotonic()))
            batches = await consumer.getmany(timeout_ms=int(wait_s * 1000))
            if not batches:
                if idle_exit is not None and time.monotonic() - last_seen >= idle_exit:
                    break
                continue
            last_seen = time.monotonic()
            # Order holds within a partition only; across partitions, show by record time.
            records = sorted(
                (r for rs in batches.values() for r in rs),
                key=lambda r: (r.timestamp, r.partition, r.offset),
            )
            for record in records:
                rendered = _render(record, as_json, dlq)
                if rendered is None:
                    continue
                out.write(rendered)
                written += 1
                if written == limit:
                    break
            out.flush()
        return written
    finally:
        await consumer.stop()


def run(
    settings: Settings,
    as_json: bool = False,
    from_beginning: bool = False,
    idle_exit: float | None = None,
    limit: int | None = None,
    dlq: bool = False,
) -> int:
    """Run `tail` on the output (or dead-letter) topic; exit 0 (also on Ctrl-C). Kafka's errors as
    they are (the command line words them)."""
    try:
        with quiet_bootstrap_errors():
            asyncio.run(
                follow(
                    settings,
                    sys.stdout.buffer,
                    as_json=as_json,
                    from_beginning=from_beginning,
                    idle_exit=idle_exit,
                    limit=limit,
                    dlq=dlq,
                )
            )
    except KeyboardInterrupt:
        return 0
    return 0
