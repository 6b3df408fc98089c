"""Dead letters as Kafka Connect writes them: the refused record's own key and value bytes,
untouched (a null value stays null), and why and where in headers.

A dead letter is then its input plus a few hundred bytes of headers, so the dead-letter topic
(which takes `max_message_bytes` plus header room) holds any record `claim-lines` accepted; any
Kafka tool can read it, and once fixed it can be published again as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from stream_edits.models import DeadLetterHeaders, RejectCode, Rejection, SourceOffset
from stream_edits.runtime.delivery import Message

MAX_FIELD_ERRORS = 20
MAX_MESSAGE_CHARS = 2000

_EXCEPTION_CLASS = {
    RejectCode.INVALID_LINE: "stream_edits.InvalidLine",
    RejectCode.CONFLICT: "stream_edits.ConflictingLine",
    RejectCode.MEMBER_STATE_TOO_LARGE: "stream_edits.MemberStateTooLarge",
    RejectCode.UNRESOLVED_REFERENCE: "stream_edits.UnresolvedReference",
    RejectCode.INTERNAL_ERROR: "stream_edits.InternalError",
}


def dead_letter_headers(
    source: SourceOffset,
    timestamp: int | None,
    rejection: Rejection,
    app_id: str,
    failed_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of a dead letter, named as `DeadLetterHeaders` describes them."""
    errors = [e.model_dump() for e in rejection.errors[:MAX_FIELD_ERRORS]]
    headers = DeadLetterHeaders.model_validate(
        {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "exception_class": _EXCEPTION_CLASS[rejection.code],
            "exception_message": rejection.reason[:MAX_MESSAGE_CHARS],
            "stage": "VALUE_CONVERTER" if rejection.code is RejectCode.INVALID_LINE else "TASK_PUT",
            "connector": app_id,
            "reason": rejection.code,
            "errors": orjson.dumps(errors).decode(),
            "timestamp": timestamp,
            "failed_at": failed_at or datetime.now(UTC),
        }
    )
    fields = headers.model_dump(mode="json", by_alias=True, exclude_none=True)
    return [(name, str(value).encode()) for name, value in fields.items()]


def dead_letter_message(
    dlq: str,
    key: bytes | None,
    value: bytes | None,
    source: SourceOffset,
    timestamp: int | None,
    rejection: Rejection,
    app_id: str,
) -> Message:
    """The dead letter of a refused record, on the partition it was read from."""
    headers = dead_letter_headers(source, timestamp, rejection, app_id)
    return Message(dlq, key, value, source.partition, headers)
