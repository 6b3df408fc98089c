"""`python -m stream_edits` runs the same command line as the `stream-edits` script."""

from stream_edits.cli import main

raise SystemExit(main())
