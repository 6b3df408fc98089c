"""The one wire codec: orjson bytes in and out, pydantic models at the edge."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def dumps(value: Any) -> bytes:
    """Serialise a model or plain value to compact JSON bytes (sorted keys, UTC datetimes)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes into plain Python values."""
    return orjson.loads(data)
