"""A broker outage under a running worker: a few log lines, not ~75 a second; readiness goes 503
within seconds and 200 again when the broker returns; then work goes on.

The test runs a broker of its own (temp data dir, free ports: the shared broker is untouched),
stops it for OUTAGE_S under a `stream-edits worker` and starts it again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from stream_edits.settings import Settings
from stream_edits_dev.broker import local
from tests.factories import NPI_A
from tests.integration.stream_harness import StreamRig, expected_verdicts, free_port

OUTAGE_S = 30.0
MAX_OUTAGE_LINES = 5
READINESS_WITHIN_S = 20.0  # readiness follows the broker within this, both ways


def claim_line(claim_id: str, member_id: str) -> bytes:
    return orjson.dumps(
        {
            "claim_id": claim_id,
            "line_number": 1,
            "member_id": member_id,
            "provider_npi": NPI_A,
            "date_of_service": "2025-06-02",
            "procedure_code": "64461",
            "received_at": "2025-06-03T09:00:00+00:00",
        }
    )


async def wait_for_text(log: Path, text: str, timeout: float) -> str:
    """The log once it contains `text` (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    content = log.read_text(errors="replace")
    while text not in content and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        content = log.read_text(errors="replace")
    return content


async def health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    """Status and body of /health/ (599 when the worker does not answer)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return 599, {}


async def until_health(
    session: aiohttp.ClientSession, url: str, status: int, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Seconds until /health/ answers `status` (and its body); fails after `timeout`."""
    began = time.monotonic()
    seen: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() - began < timeout:
        seen = await health(session, url)
        if seen[0] == status:
            return time.monotonic() - began, seen[1]
        await asyncio.sleep(0.25)
    raise AssertionError(f"/health/ never answered {status} within {timeout} s; last {seen}")


async def test_outage_is_logged_in_a_few_lines_and_readiness_follows_the_broker(
    own_broker: Settings, unique_name: str, tmp_path: Path
) -> None:
    port = free_port()
    rig = StreamRig(
        unique_name, tmp_path, own_broker.bootstrap_servers, {"STREAM_EDITS_WEB_PORT": str(port)}
    )
    await rig.create_topics()
    rig.start_worker()
    log = tmp_path / "worker-0.log"
    url = f"http://127.0.0.1:{port}/health/"
    session = aiohttp.ClientSession()
    try:
        before = [claim_line("CLAIM-BEFORE-7731", "MEMBER-5521")]
        await rig.produce(before)
        expected = expected_verdicts(before)
        assert await rig.verdicts(expected, timeout=60) == expected, rig.logs()
        await until_health(session, url, 200, timeout=30)

        began = log.stat().st_size
        await asyncio.to_thread(local.stop, own_broker)
        stopped = time.monotonic()
        went_down, body = await until_health(session, url, 503, READINESS_WITHIN_S)
        assert "broker_unreachable" in body["reasons"], body
        async with session.get(f"http://127.0.0.1:{port}/livez/") as live:
            assert live.status == 200  # liveness: an outage is no reason to restart the worker
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        assert (await health(session, url))[0] == 503  # not ready for the whole outage
        ended = log.stat().st_size
        assert await asyncio.to_thread(local.start, own_broker) == 0
        came_back, body = await until_health(session, url, 200, READINESS_WITHIN_S)
        assert body == {"status": "ready", "reasons": []}
        print(f"readiness: 503 {went_down:.1f} s after the stop, 200 {came_back:.1f} s after")

        during = log.read_bytes()[began:ended].decode(errors="replace").splitlines()
        assert len(during) <= MAX_OUTAGE_LINES, "\n".join(during[:20])
        assert sum("unreachable since" in line for line in during) == 1, during

        after = [claim_line("CLAIM-AFTER-8842", "MEMBER-6632")]
        await rig.produce(after)
        expected = expected_verdicts(before + after)
        assert await rig.verdicts(expected, timeout=45) == expected, rig.logs()

        content = await wait_for_text(log, "reachable again after", timeout=15)
        summaries = [line for line in content.splitlines() if "reachable" in line]
        assert any("reachable again after" in line for line in summaries), rig.logs()
        for line in during + summaries:
            assert "MEMBER-" not in line and "CLAIM-" not in line, line
    finally:
        await session.close()
        rig.stop_all()
