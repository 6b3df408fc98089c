"""stream-edits: a streaming claims-edit processor (MUE, add-on and PTP edits) on Kafka."""

__version__ = "0.1.0"
