"""`stream-edits worker`: run the Faust stream processor."""

from __future__ import annotations

import asyncio

import faust

from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.preflight import check_topics
from stream_edits.runtime.app import create_app
from stream_edits.settings import Settings


def run(settings: Settings, loglevel: str = "warning") -> int:
    """Start a worker and block until it stops (Ctrl-C or SIGTERM); exit 0. PreflightError,
    TopicsError or Kafka's error when the topics do not fit the worker (the command line words
    them)."""
    with quiet_bootstrap_errors():
        asyncio.run(check_topics(settings))
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0
