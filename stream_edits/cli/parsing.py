"""What every command module shares: the type of the subparsers it adds itself to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from stream_edits.settings import Settings

# Generic for type checkers only: argparse's class is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace, Settings], int]
