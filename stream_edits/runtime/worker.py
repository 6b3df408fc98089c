"""`stream-edits worker`: run the Faust stream processor."""

from __future__ import annotations

import asyncio
import sys

import faust
from aiokafka.errors import KafkaError

from stream_edits.kafka.admin import TopicsError
from stream_edits.kafka.errors import explain, quiet_bootstrap_errors
from stream_edits.kafka.preflight import PreflightError, check_topics
from stream_edits.runtime.app import create_app
from stream_edits.settings import Settings


def run(settings: Settings, loglevel: str = "warning") -> int:
    """Start a worker and block until it stops (Ctrl-C or SIGTERM); exit 2 when the topics do
    not fit the worker (one line on stderr)."""
    try:
        with quiet_bootstrap_errors():
            asyncio.run(check_topics(settings))
    except (PreflightError, TopicsError, KafkaError) as error:
        print(f"stream-edits worker: {explain(error, settings)}", file=sys.stderr)
        return 2
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0
