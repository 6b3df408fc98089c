"""`produce --format` of X12 837P, FHIR and NDJSON into a real worker: the same decisions, and a
malformed file's bad claims refused by `produce` while its good claims are decided; claims and
members identified as payers identify them (topics/samples/identity)."""

from __future__ import annotations

import orjson
import pytest

from stream_edits.formats.reader import read_claims
from stream_edits.kafka.topics import CONTRACT_DIR
from tests.integration.stream_harness import StreamRig, expected_verdicts
from tests.unit.test_identity_samples import FHIR_EXPECTED, X12_EXPECTED

pytestmark = pytest.mark.broker

SAMPLES = CONTRACT_DIR / "samples"
# The sample of claim-lines and the seed's three clinical examples, each in three forms.
STEMS = [
    SAMPLES / "claim-lines",
    SAMPLES / "seed" / "thoracic-surgery",
    SAMPLES / "seed" / "rib-fractures",
    SAMPLES / "seed" / "breast-surgery",
]
SUFFIX = {"ndjson": ".ndjson", "x12-837p": ".837p", "fhir-claim": ".fhir.json"}


@pytest.mark.parametrize("input_format", sorted(SUFFIX))
async def test_each_format_through_produce_and_a_worker_gets_the_ndjson_decisions(
    rig: StreamRig, input_format: str
) -> None:
    # Converted claims are named by the payer claim control numbers intake gives them; that
    # their decisions are the NDJSON form's is tests/unit/test_input_formats.py's business.
    converted = [
        line
        for stem in STEMS
        for line in read_claims(f"{stem}{SUFFIX[input_format]}", input_format).lines
    ]
    expected = expected_verdicts(converted)
    bad = SAMPLES / f"bad-claim-lines{SUFFIX[input_format]}"
    # What produce publishes of the bad file: its good claims (none of the NDJSON's bad lines).
    expected.update(expected_verdicts(read_claims(str(bad), input_format).lines))
    rig.start_worker()

    for stem in STEMS:
        path = f"{stem}{SUFFIX[input_format]}"
        result = rig.cli("produce", "--format", input_format, "--no-progress", path)
        assert (result.returncode, result.stderr.startswith("published ")) == (0, True), result
    refused = rig.cli("produce", "--format", input_format, "--no-progress", str(bad))

    assert refused.returncode == 0, refused.stderr
    if input_format != "ndjson":
        *rejections, summary = refused.stderr.splitlines()
        assert summary.endswith(f"; {len(rejections)} claims refused")
        assert all(orjson.loads(r)["reason"].startswith("claim ") for r in rejections)
    got = await rig.verdicts(expected, timeout=120)
    assert got == expected, rig.logs()


async def test_identity_samples_through_produce_and_a_worker_get_what_a_payer_expects(
    rig: StreamRig,
) -> None:
    identity = SAMPLES / "identity"
    files = [(identity / "claims.837p", "x12-837p"), (identity / "claims.fhir.json", "fhir-claim")]
    lines = [line for path, fmt in files for line in read_claims(str(path), fmt).lines]
    expected = expected_verdicts(lines)
    rig.start_worker()

    for path, fmt in files:
        result = rig.cli("produce", "--format", fmt, "--no-progress", str(path))
        assert (result.returncode, result.stderr.startswith("published ")) == (0, True), result

    got = await rig.verdicts(expected, timeout=120)
    assert got == expected, rig.logs()
    decisions = await rig.read(rig.settings.output_topic, lambda v: len(v) >= len(lines), 30)
    latest = {(d["claim_id"], d["line_number"]): d for d in decisions}
    keys = ("patient_control_number", "member_id", "line_number", "procedure_code", "status")
    payer_view = sorted(tuple(d[k] for k in keys) for d in latest.values())
    assert payer_view == sorted(X12_EXPECTED + FHIR_EXPECTED)
    # The void naming a claim nobody sent is decided and also reported on the dead-letter topic.
    [(headers, _)] = await rig.dead_letters(1, timeout=30)
    assert headers.reason == "unresolved_reference" and headers.stage == "TASK_PUT"
