"""stream_edits_dev."""
