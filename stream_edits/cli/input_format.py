"""The input-format arguments that `check` and `produce` share."""

from __future__ import annotations

import argparse


def add_input_format_arguments(command: argparse.ArgumentParser) -> None:
    """`--format` and `--received-at`."""
    command.add_argument(
        "--format",
        choices=["ndjson", "x12-837p", "fhir-claim"],
        default="ndjson",
        help="ndjson: claim-line events (default); x12-837p: an X12 837P 005010X222A1 "
        "interchange; fhir-claim: a FHIR R4 Claim, a Bundle of them, or NDJSON of either",
    )
    command.add_argument(
        "--received-at",
        default=None,
        metavar="TIME",
        help="x12-837p, fhir-claim: received_at of every claim (ISO 8601 with a zone) instead of "
        "the transaction's BHT time (as UTC) or the Claim's created",
    )
