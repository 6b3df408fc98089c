"""`stream-edits worker`: run the Faust stream processor."""

from __future__ import annotations

import faust

from stream_edits.settings import Settings
from stream_edits.stream.app import create_app


def run(settings: Settings, loglevel: str = "warning") -> int:
    """Start a worker and block until it stops (Ctrl-C or SIGTERM)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0
