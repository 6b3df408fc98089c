"""Run `stream-edits` with its code from another source tree (the bench's `--baseline-src`).

`PYTHONPATH` alone is not enough: an editable install (`pip install -e`) puts a finder on
`sys.meta_path` that maps `stream_edits` to its own tree ahead of every path entry, so the
baseline would silently run the code under test. Here that finder is dropped, the tree goes first
on the path, and the run stops if `stream_edits` still comes from elsewhere.

    python -m stream_edits_dev.bench.from_tree SRC worker --loglevel warning
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """Run `python -m stream_edits ARGS...` with `stream_edits` imported from `argv[0]`."""
    source, args = Path(argv[0]).resolve(), argv[1:]
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if not getattr(finder, "__module__", "").startswith("__editable__")
    ]
    sys.path.insert(0, str(source))
    import stream_edits

    where = Path(stream_edits.__file__ or "").resolve()
    if source not in where.parents:
        raise SystemExit(f"stream_edits comes from {where}, not from {source}")
    sys.argv = ["stream_edits", *args]
    runpy.run_module("stream_edits", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
