"""The pure edit engine: order-independent decisions for a patient's day. No Kafka here."""

from stream_edits.engine.core import EditEngine, LineDecision, Outcome
from stream_edits.engine.state import ClaimEntry, DayState

__all__ = ["ClaimEntry", "DayState", "EditEngine", "LineDecision", "Outcome"]
