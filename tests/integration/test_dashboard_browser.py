"""The dashboard in a real browser: Debian's chromium, headless, driven by playwright (no bundled
browser). One test runs a real worker on the real broker and follows its /stats/ while lines flow
and after it dies; the others serve the page in-process and answer /stats/ with crafted documents
(not ready, keys missing, a known timeline, a failing server) to pin what the page shows."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import faust
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Route, async_playwright

from stream_edits.runtime.web.dashboard import add_dashboard
from tests.integration.stream_harness import StreamRig

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"
VIEWPORT = {"width": 1280, "height": 900}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium (the `chromium` package, installed by .ci/run), headless."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not on PATH: apt-get install -y chromium (see .ci/run)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=executable, headless=True, args=["--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser) -> tuple[Page, list[str], list[str]]:
    """A page of its own context; the URLs it requests, and its uncaught script errors and
    console errors (a blocked resource or a Content-Security-Policy violation is one)."""
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    requested: list[str] = []
    errors: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, requested, errors


async def value(page: Page, selector: str) -> str | None:
    """The raw number behind a shown one (the `data-value` the script writes beside the text)."""
    return await page.get_attribute(selector, "data-value")


async def bars(page: Page, container: str) -> dict[str, int]:
    """The bars of a breakdown as {label: count}."""
    found: dict[str, int] = await page.eval_on_selector_all(
        f"{container} .bar",
        "rows => Object.fromEntries(rows.map(r => [r.dataset.key, Number(r.dataset.value)]))",
    )
    return found


def identifiers_in(lines: list[bytes]) -> set[str]:
    """The claim, member and provider identifiers of the lines that parse."""
    found = set()
    for raw in lines:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            for key in ("claim_id", "member_id", "provider_npi", "original_claim_id"):
                if isinstance(event.get(key), str) and len(event[key]) >= 4:
                    found.add(event[key])
    return found


def only_same_origin(requested: list[str], origin: str) -> list[str]:
    """The requests that went anywhere but `origin` (data: URLs load nothing)."""
    return [u for u in requested if not (u.startswith(origin + "/") or u.startswith("data:"))]


# -- a real worker on the real broker ----------------------------------------------------------


async def stats_until(
    origin: str, done: Callable[[dict[str, Any]], bool], timeout: float, rig: StreamRig
) -> dict[str, Any]:
    """GET /stats/ every 0.5 s until `done(stats)`; fails with the worker logs after `timeout`."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | str = "no answer"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(origin + "/stats/") as response:
                    if response.status == 200:
                        last = await response.json()
                        if done(last):
                            return last
                    else:
                        last = f"HTTP {response.status}"
            except aiohttp.ClientError as error:
                last = repr(error)
            await asyncio.sleep(0.5)
    pytest.fail(f"/stats/ never got there in {timeout} s; last: {last}\n{rig.logs()}")


async def settled_stats(origin: str, rig: StreamRig, at_least: int) -> dict[str, Any]:
    """/stats/ once `at_least` lines are in and the counters stopped moving for 3 s."""
    counters = ("events", "decisions", "dead_letters", "revisions", "forwarded")
    await stats_until(origin, lambda s: s["events"] >= at_least, 120, rig)
    previous: dict[str, Any] = {}

    def still(stats: dict[str, Any]) -> bool:
        nonlocal previous
        same = all(stats[k] == previous.get(k) for k in counters)
        previous = stats
        return same

    while True:
        stats = await stats_until(origin, lambda s: True, 10, rig)
        await asyncio.sleep(3)
        if still(stats):
            return stats


@pytest.mark.broker
async def test_the_dashboard_of_a_running_worker_follows_its_stats(rig: StreamRig) -> None:
    good = (SAMPLES / "claim-lines.ndjson").read_bytes().splitlines()
    bad = (SAMPLES / "bad-claim-lines.ndjson").read_bytes().splitlines()
    worker = rig.start_worker()
    origin = f"http://127.0.0.1:{rig.web_ports[worker.pid]}"
    ready = await stats_until(origin, lambda s: s.get("health", {}).get("ready") is True, 90, rig)
    assert ready["events"] == 0

    async with chromium() as browser:
        page, requested, errors = await open_page(browser)
        await page.goto(origin + "/")
        await page.wait_for_selector('body[data-state="connected"]', timeout=10_000)

        # readiness, identity and the numbers before any line
        await page.wait_for_selector('#readiness[data-ready="true"]', timeout=10_000)
        assert await page.text_content("#readiness-label") == "READY"
        assert await page.text_content("#app-id") == rig.settings.app_id
        assert await page.text_content("#rules-version") == ready["rules_version"]
        assert await value(page, "#total-events") == "0"
        assert await page.text_content("#total-events") == "0"
        assert (await page.text_content("#uptime")) not in ("", "–")
        throughput_before = await page.get_attribute("#chart-throughput path.series", "d")
        assert await page.get_attribute("#chart-throughput", "data-lines") == "0"

        # lines flow: the totals, the breakdowns and the charts follow /stats/
        await rig.produce(good + bad)
        final = await settled_stats(origin, rig, at_least=len(good) + len(bad))
        assert final["decisions"] > 0 and final["dead_letters"] > 0, final
        await page.wait_for_function(
            "n => document.getElementById('total-events').dataset.value === String(n)",
            arg=final["events"],
            timeout=10_000,
        )
        shown = int((await page.text_content("#total-events") or "").replace(",", ""))
        assert shown == final["events"]
        for key in ("decisions", "revisions", "forwarded", "dead_letters"):
            assert await value(page, f"#total-{key.replace('_', '-')}") == str(final[key]), key
        assert await bars(page, "#by-status") == final["decisions_by_status"]
        assert await bars(page, "#by-edit") == final["decisions_by_edit"]
        assert await bars(page, "#by-reason") == final["dead_letters_by_reason"]
        lag_table = await page.text_content("#lag-rows") or ""
        assert rig.settings.input_topic in lag_table, lag_table

        # the charts take the lines once their 5-s bucket is complete
        timeline_lines = sum(p["lines"] for p in final["timeline"]["points"])
        assert timeline_lines > 0
        await page.wait_for_function(
            "n => document.getElementById('chart-throughput').dataset.lines === String(n)",
            arg=timeline_lines,
            timeout=15_000,
        )
        throughput_after = await page.get_attribute("#chart-throughput path.series", "d")
        assert throughput_after != throughput_before
        assert int(await page.get_attribute("#chart-latency", "data-points") or 0) >= 1
        assert await page.locator("#chart-latency path.series, #chart-latency circle").count() >= 3

        # counts only: nothing of the lines themselves is on the page
        text = await page.inner_text("body")
        identifiers = identifiers_in(good + bad)
        assert len(identifiers) >= 5
        assert [i for i in identifiers if i in text] == []

        assert errors == [], errors

        # the worker dies: the page says so and keeps the last numbers, greyed
        rig.kill(worker)
        await page.wait_for_selector('body[data-state="disconnected"]', timeout=15_000)
        assert await page.is_visible("#disconnected-banner")
        assert await page.text_content("#connection") == "DISCONNECTED"
        assert await value(page, "#total-events") == str(final["events"])
        opacity = await page.eval_on_selector("#main", "e => getComputedStyle(e).opacity")
        assert float(opacity) < 1

        assert requested, "the page made requests"
        assert only_same_origin(requested, origin) == [], requested
        assert sum(u.startswith(origin + "/stats/") for u in requested) >= 3


# -- the page alone, /stats/ crafted -----------------------------------------------------------


@asynccontextmanager
async def served_page() -> AsyncIterator[str]:
    """The dashboard's views on a Faust app without a worker, served in-process: the origin."""
    app = faust.App("dashboard-browser", web_stats_enabled=False, autodiscover=False)
    add_dashboard(app)
    app.web.init_server()
    server = TestServer(app.web.web_app, host="127.0.0.1")  # type: ignore[attr-defined]
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


Answer = Callable[[], tuple[int, dict[str, Any]]]


async def answer_stats(page: Page, answer: Answer) -> None:
    """Answer the page's /stats/ requests with `answer()`: (status, document)."""

    async def fulfil(route: Route) -> None:
        status, document = answer()
        await route.fulfill(
            status=status, content_type="application/json", body=json.dumps(document)
        )

    await page.route("**/stats/", fulfil)


async def test_not_ready_is_shown_with_its_reasons_and_missing_keys_as_dashes() -> None:
    document = {
        "app_id": "claims-east",
        "health": {"ready": False, "reasons": ["broker_unreachable", "no_assignment", "odd"]},
        "events": 1234567,
    }
    async with served_page() as origin, chromium() as browser:
        page, requested, errors = await open_page(browser)
        await answer_stats(page, lambda: (200, document))
        await page.goto(origin + "/")
        await page.wait_for_selector('body[data-state="connected"]')
        assert await page.text_content("#readiness-label") == "NOT READY"
        assert await page.get_attribute("#readiness", "data-ready") == "false"
        assert await page.locator("#readiness-reasons li").all_text_contents() == [
            "broker unreachable",
            "no partitions assigned",
            "odd",
        ]
        assert await page.title() == "NOT READY · stream-edits claims-east"
        assert await page.text_content("#total-events") == "1,234,567"
        for missing in ("#total-decisions", "#rules-version", "#latency-p99", "#lag-total"):
            assert await page.text_content(missing) == "–", missing
        assert "no timeline" in (await page.text_content("#chart-throughput") or "")
        assert await page.locator("#by-status .bar").count() == 0
        assert errors == [], errors
        assert only_same_origin(requested, origin) == [], requested


async def test_the_charts_draw_complete_buckets_with_gaps_as_zero() -> None:
    now = 1_767_360_000 + 2.5  # mid-bucket: the bucket starting at ...000 is in progress
    started = now - 3600
    points = [
        {"t": now - 2.5 - 30, "lines": 50, "decisions": 50, "dead_letters": 0,
         "p50_ms": 4.0, "p95_ms": 9.0, "p99_ms": 12.5},
        # ...-25 to ...-10: no lines (absent buckets)
        {"t": now - 2.5 - 5, "lines": 100, "decisions": 98, "dead_letters": 2,
         "p50_ms": 5.0, "p95_ms": 11.0, "p99_ms": 20.0},
        {"t": now - 2.5, "lines": 7, "decisions": 7, "dead_letters": 0,  # in progress: left out
         "p50_ms": 3.0, "p95_ms": 3.0, "p99_ms": 3.0},
    ]  # fmt: skip
    document = {
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "uptime_s": now - started,
        "health": {"ready": True, "reasons": []},
        "timeline": {"bucket_s": 5, "points": points},
        "latency_ms": {"p50": 4.5, "p95": 10.2, "p99": 19.75, "count": 157},
    }
    async with served_page() as origin, chromium() as browser:
        page, _, errors = await open_page(browser)
        await answer_stats(page, lambda: (200, document))
        await page.goto(origin + "/")
        await page.wait_for_selector('body[data-state="connected"]')
        chart = "#chart-throughput"
        assert await page.get_attribute(chart, "data-lines") == "150"  # 7 in progress: left out
        # 15 minutes of 5-s buckets, the one in progress left out (up for an hour: no gap at start)
        assert await page.get_attribute(chart, "data-points") == str(15 * 60 // 5 - 1)
        assert await value(page, "#throughput-now") == "20"  # 100 lines in the last 5 s
        assert await page.text_content("#throughput-now") == "20"
        assert await page.get_attribute("#chart-latency", "data-points") == "2"
        assert await page.locator("#chart-latency path.series").count() == 3
        # y axes: lines/s in round steps up to the peak, latency in decades (4 to 20 ms)
        y_labels = "s => [...s.querySelectorAll('.axis[text-anchor=end]')].map(t => t.textContent)"
        assert await page.eval_on_selector(chart, y_labels) == ["0", "5", "10", "15", "20"]
        assert await page.eval_on_selector("#chart-latency", y_labels) == ["1", "10", "100"]
        assert await page.text_content("#latency-p99") == "19.8"
        assert await page.text_content("#readiness-label") == "READY"
        assert await page.text_content("#uptime") == "1h 0m"
        assert errors == [], errors


async def test_a_failing_stats_shows_disconnected_keeps_the_numbers_and_recovers() -> None:
    state = {"status": 200, "events": 42}

    def answer() -> tuple[int, dict[str, Any]]:
        return state["status"], {"events": state["events"], "health": {"ready": True}}

    async with served_page() as origin, chromium() as browser:
        page, _, errors = await open_page(browser)
        await answer_stats(page, answer)
        await page.goto(origin + "/")
        await page.wait_for_selector('body[data-state="connected"]')
        updated = await page.text_content("#last-updated")
        assert updated not in (None, "never")
        state.update(status=500, events=99)
        await page.wait_for_selector('body[data-state="disconnected"]', timeout=6_000)
        assert await page.is_visible("#disconnected-banner")
        assert "HTTP 500" in (await page.text_content("#disconnected-reason") or "")
        assert await page.text_content("#total-events") == "42"  # the last numbers, greyed
        assert await page.text_content("#last-updated") == updated
        state.update(status=200)
        await page.wait_for_selector('body[data-state="connected"]', timeout=6_000)
        assert await page.text_content("#total-events") == "99"
        assert not await page.is_visible("#disconnected-banner")
        unexpected = [e for e in errors if "status of 500" not in e]  # the 500s we answered
        assert unexpected == [], errors
