"""The one place that reaches into Faust internals, with the reason for each."""

from __future__ import annotations

import weakref

from faust.streams import _current_event
from faust.types import EventT


def bind_event(event: EventT[bytes]) -> None:
    """Make `event` Faust's current event.

    Faust routes a table read or write (RocksDB partition store and changelog partition) by the
    current event. In a batch from `take_events` that is the batch's last event, whatever its
    partition; binding each event while it is processed keeps every member's state in the
    partition that owns the member.
    """
    _current_event.set(weakref.ref(event))
