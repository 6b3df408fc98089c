"""`produce --format` of X12 837P, FHIR and NDJSON into a real worker: the same decisions, and a
malformed file's bad claims refused by `produce` while its good claims are decided."""

from __future__ import annotations

import orjson
import pytest

from stream_edits.formats.reader import read_claims
from stream_edits.topics import CONTRACT_DIR
from tests.integration.stream_harness import StreamRig, expected_verdicts

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
    ndjson = [
        line for stem in STEMS for line in stem.with_suffix(".ndjson").read_bytes().splitlines()
    ]
    expected = expected_verdicts(ndjson)
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
