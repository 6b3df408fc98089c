"""The library's refusal of what a command asked: raised by jobs, printed by the command line."""

from __future__ import annotations


class Refused(ValueError):
    """What was asked cannot be done as asked (an option, an input, a topic name); the message
    says why in words for the person who asked. `stream_edits.cli.errors` prints it."""
