"""The Faust app for `faust -A stream_edits.app worker`, configured from the environment."""

from stream_edits.settings import Settings
from stream_edits.stream.app import create_app

app = create_app(Settings())
