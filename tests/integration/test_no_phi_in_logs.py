"""No protected health information in the worker's log, even at DEBUG: valid and invalid input,
a conflict, pass-through fields, a broker outage and the guarded look-ups all go through a
worker logging at DEBUG, and no member id, claim id, NPI or piece of raw record content appears
in any line of its log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson

from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from tests.integration.stream_harness import StreamRig, expected_verdicts, free_port

REPO = Path(__file__).resolve().parents[2]
GOOD = (REPO / "topics/samples/claim-lines.ndjson").read_bytes().splitlines()
BAD = (REPO / "topics/samples/bad-claim-lines.ndjson").read_bytes().splitlines()
TOKEN = "test-token-4f1c-9a7e-22d1"
RAW_MARKER = "RAW-CONTENT-MARKER-5150"
PASS_THROUGH_MARKER = "JANE-DOE-MARKER-2718"


def identifiers(lines: list[bytes]) -> set[str]:
    """Every member id, claim id and NPI in the input that parses as JSON."""
    found = set()
    for line in lines:
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        for name in ("member_id", "claim_id", "original_claim_id", "provider_npi"):
            if isinstance(fields.get(name), str) and fields[name]:
                found.add(fields[name])
    return found


async def wait_ready(session: aiohttp.ClientSession, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/health/") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError("the worker never became ready")


async def test_a_worker_at_debug_logs_no_member_claim_npi_or_record_content(
    own_broker: Settings, unique_name: str, tmp_path: Path
) -> None:
    port = free_port()
    rig = StreamRig(
        unique_name,
        tmp_path,
        own_broker.bootstrap_servers,
        {"STREAM_EDITS_WEB_PORT": str(port), "STREAM_EDITS_WEB_TOKEN": TOKEN},
    )
    base = f"http://127.0.0.1:{port}"
    first = orjson.loads(GOOD[0])
    conflict = orjson.dumps({**first, "units": first.get("units", 1) + 1})  # same line, new content
    pass_through = orjson.dumps(
        {**first, "claim_id": "C-PASS-7", "patient_name": PASS_THROUGH_MARKER}
    )
    raw = f'{{"claim_id": "{RAW_MARKER}", "member_id": '.encode()  # cut short: invalid JSON
    before = [*GOOD, *BAD, conflict, pass_through, raw]
    after = [orjson.dumps({**first, "claim_id": "C-AFTER-OUTAGE-3"})]
    await rig.create_topics()
    await rig.produce(before)  # waiting before the worker starts: its first fetches hold them
    rig.start_worker(loglevel="debug")
    session = aiohttp.ClientSession()
    try:
        await wait_ready(session, base, 60)
        expected = expected_verdicts([*GOOD, pass_through])
        assert await rig.verdicts(expected, timeout=60) == expected

        await asyncio.to_thread(local.stop, own_broker)  # an outage, logged at DEBUG
        await asyncio.sleep(8)
        assert await asyncio.to_thread(local.start, own_broker) == 0
        await wait_ready(session, base, 60)
        await rig.produce(after)
        expected = expected_verdicts([*GOOD, pass_through, *after])
        assert await rig.verdicts(expected, timeout=60) == expected

        member, claim = first["member_id"], first["claim_id"]
        dos, number = first["date_of_service"], first["line_number"]
        for path in (f"/members/{member}/days/{dos}/", f"/lines/{claim}/{number}/"):
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}, {"Authorization": "x"}):
                async with session.get(f"{base}{path}", headers=headers) as response:
                    await response.read()
    finally:
        await session.close()
        rig.stop_all()

    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert "[DEBUG]" in log  # the level really was DEBUG
    assert "dead-lettered" in log  # the bad records were logged, by position
    secrets = identifiers([*before, *after]) | {RAW_MARKER, PASS_THROUGH_MARKER, TOKEN}
    leaks = [(s, line) for line in log.splitlines() for s in secrets if s in line]
    assert not leaks, leaks[:10]
