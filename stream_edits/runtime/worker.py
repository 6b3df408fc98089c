"""`stream-edits worker`: run the Faust stream processor."""

from __future__ import annotations

import asyncio
import sys

import faust

from stream_edits.kafka.errors import quiet_bootstrap_errors
from stream_edits.kafka.preflight import check_topics
from stream_edits.runtime.app import create_app
from stream_edits.settings import Settings

# How long a thread may hold the GIL while another waits for it. The worker has two threads that
# run Python: the decide task's (the main one) and Faust's consumer thread, which reads fetch
# responses and feeds the inbox. With CPython's 5 ms, a fetch that arrives while a batch is being
# decided waits up to 5 ms for the GIL before its records reach the inbox; 1 ms bounds that wait
# (bench, 5,000 lines/s: fetch-stage p99 20.8 and 17.4 ms against 27.6 and 19.8, two pairs of
# runs on 2026-12-04), at a cost of at most a thousand hand-overs a second.
GIL_SWITCH_S = 0.001


def run(settings: Settings, loglevel: str = "warning") -> int:
    """Start a worker and block until it stops (Ctrl-C or SIGTERM); exit 0. PreflightError,
    TopicsError or Kafka's error when the topics do not fit the worker (the command line words
    them)."""
    with quiet_bootstrap_errors():
        asyncio.run(check_topics(settings))
    sys.setswitchinterval(GIL_SWITCH_S)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0
