"""The Faust app for `faust -A stream_edits.runtime.faust_app worker`, configured from the
environment."""

from stream_edits.runtime.app import create_app
from stream_edits.settings import Settings

app = create_app(Settings())
