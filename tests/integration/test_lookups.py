"""The look-ups on running workers and the real broker: a patient-day's lines and one line by
claim id answer exactly what the worker published (revisions included), only with the bearer
token, and from any worker of the group."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from stream_edits.runtime.placement import owner_function
from tests.factories import NPI_A, NPI_B
from tests.integration.stream_harness import StreamRig, Verdicts, expected_verdicts

pytestmark = pytest.mark.broker

TOKEN = "lookup-test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STREAM_ONLY = ("decided_at", "source")
DAY = "2025-06-02"
T0 = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)

Reply = tuple[int, Any, Mapping[str, str]]


# -- asking the workers ---------------------------------------------------------------------------


async def get(port: int, path: str, headers: Mapping[str, str] | None = None) -> Reply:
    """GET `path` from the worker on `port`: status, JSON body (else text), headers."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=dict(headers or {})) as response,
    ):
        text = await response.text()
        body: Any = orjson.loads(text) if response.content_type == "application/json" else text
        return response.status, body, dict(response.headers)


async def until(
    port: int,
    path: str,
    accept: Callable[[Reply], bool],
    timeout: float = 60,
    headers: Mapping[str, str] | None = BEARER,
) -> Reply:
    """Ask until the reply is accepted (the worker may be starting, rebalancing or a batch
    behind the output topic); the last reply when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await get(port, path, headers)
        except aiohttp.ClientError as failure:  # not listening yet
            reply = (0, repr(failure), {})
        if accept(reply) or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.5)


def strip(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A published decision without its stream-only fields."""
    return {k: v for k, v in decision.items() if k not in STREAM_ONLY}


def _verdict(value: Mapping[str, Any]) -> tuple[str, list[str], int]:
    return value["status"], [e["code"] for e in value["edits"]], value["revision"]


async def published(
    rig: StreamRig, expected: Verdicts, timeout: float = 120
) -> dict[tuple[str, int], dict[str, Any]]:
    """The latest decision per line on the output topic, read until every line has its
    expected (status, edit codes, revision); without the stream-only fields."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}

    def done(values: list[dict[str, Any]]) -> bool:
        latest.clear()
        for value in values:
            latest[(value["claim_id"], value["line_number"])] = value
        return {key: _verdict(v) for key, v in latest.items()} == expected

    await rig.read(rig.settings.output_topic, done, timeout)
    assert {key: _verdict(v) for key, v in latest.items()} == expected, rig.logs()
    return {key: strip(value) for key, value in latest.items()}


def port_of(rig: StreamRig, index: int = 0) -> int:
    """The web port of the rig's worker `index`."""
    return rig.web_ports[rig.workers[index].pid]


def day_path(member_id: str, day: str = DAY) -> str:
    return f"/members/{quote(member_id, safe='')}/days/{day}/"


def line_path(claim_id: str, line_number: int | str) -> str:
    return f"/lines/{quote(claim_id, safe='')}/{line_number}/"


# -- the data -------------------------------------------------------------------------------------


def event(claim: str, n: int, member: str, code: str, minutes: int, **extra: object) -> bytes:
    """A line of `member` on DAY, received `minutes` after T0."""
    return orjson.dumps(
        {
            "claim_id": claim,
            "line_number": n,
            "member_id": member,
            "provider_npi": extra.pop("npi", NPI_A),
            "date_of_service": DAY,
            "procedure_code": code,
            "received_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            **extra,
        }
    )


def void(claim: str, member: str, original: str, minutes: int) -> bytes:
    """A void (frequency 8) of `original`."""
    return orjson.dumps(
        {
            "claim_id": claim,
            "member_id": member,
            "claim_frequency": "8",
            "original_claim_id": original,
            "received_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        }
    )


def patient_day(member: str, tag: str) -> tuple[list[bytes], list[bytes]]:
    """Two phases of one patient-day. The first: an add-on without its primary (denied), a line
    of a code no rule mentions (a stub, accepted), a stub line then voided (revision 2), an
    imaging line whose claim is voided. The second: the primary, received before the add-on,
    which revises the add-on to accepted (revision 2), and a second primary line denied for the
    day's unit the first consumed."""
    first = [
        event(f"ADD-{tag}", 1, member, "64462", 10),
        event(f"STUB-{tag}", 1, member, "99213", 11, npi=NPI_B),
        event(f"STUBV-{tag}", 1, member, "99213", 12),
        void(f"VOIDS-{tag}", member, f"STUBV-{tag}", 13),
        event(f"IMG-{tag}", 1, member, "77002", 14),
        void(f"VOIDI-{tag}", member, f"IMG-{tag}", 15),
    ]
    second = [
        event(f"PRIM-{tag}", 1, member, "64461", 0),
        event(f"PRIM-{tag}", 2, member, "64461", 0),
    ]
    return first, second


# -- the tests ------------------------------------------------------------------------------------


async def test_lookups_answer_what_the_worker_published_including_revisions(
    rig: StreamRig,
) -> None:
    member, tag = f"M {random.randrange(10**9)}", f"{random.randrange(10**6)}"  # a space: quoted
    first, second = patient_day(member, tag)
    rig.extra_env["STREAM_EDITS_WEB_TOKEN"] = TOKEN
    rig.start_worker()
    port = port_of(rig)
    await rig.produce(first)
    expected = expected_verdicts(first)
    assert expected[(f"ADD-{tag}", 1)] == ("deny", ["ADDON_WITHOUT_PRIMARY"], 1)
    assert expected[(f"STUBV-{tag}", 1)] == ("void", [], 2)
    decisions = await published(rig, expected)

    status, body, _ = await until(
        port, day_path(member), lambda r: r[0] == 200 and len(r[1]["lines"]) == 4
    )
    assert status == 200, (body, rig.logs())
    assert body["member_id"] == member and body["date_of_service"] == DAY
    assert body["lines"] == [decisions[key] for key in sorted(decisions)]
    for (claim_id, number), decision in decisions.items():
        assert (await get(port, line_path(claim_id, number), BEARER))[:2] == (200, decision)

    # A later line revises the add-on: the look-ups follow, revision 2.
    await rig.produce(second)
    expected = expected_verdicts(first + second)
    assert expected[(f"ADD-{tag}", 1)] == ("accept", [], 2)
    decisions = await published(rig, expected)
    status, body, _ = await until(
        port, line_path(f"ADD-{tag}", 1), lambda r: r[0] == 200 and r[1]["revision"] == 2
    )
    assert (status, body) == (200, decisions[(f"ADD-{tag}", 1)])
    status, body, _ = await until(
        port, day_path(member), lambda r: r[0] == 200 and len(r[1]["lines"]) == 6
    )
    assert body["lines"] == [decisions[key] for key in sorted(decisions)]
    # Each denial names its cause where one exists, and the look-up shows the same.
    primary = {"claim_id": f"PRIM-{tag}", "line_number": 1}
    assert decisions[(f"ADD-{tag}", 1)]["changed_by"] == primary
    denied = decisions[(f"PRIM-{tag}", 2)]
    assert [e["related_lines"] for e in denied["edits"]] == [[primary]]
    assert (await get(port, line_path(f"PRIM-{tag}", 2), BEARER))[:2] == (200, denied)
    stub = decisions[(f"STUB-{tag}", 1)]
    assert stub["procedure_code"] == "99213" and stub["provider_npi"] == NPI_B

    # Unknown and malformed.
    assert (await get(port, day_path(member, "2025-06-03"), BEARER))[0] == 404
    assert (await get(port, day_path(member + "-nobody"), BEARER))[0] == 404
    assert (await get(port, line_path(f"ADD-{tag}", 2), BEARER))[0] == 404
    assert (await get(port, line_path(f"NOSUCH-{tag}", 1), BEARER))[0] == 404
    assert (await get(port, line_path(f"VOIDI-{tag}", 1), BEARER))[0] == 404  # a void: no lines
    for bad in ("2025-6-2", "20250602", "2025-02-30", "yesterday"):
        status, body, _ = await get(port, day_path(member, bad), BEARER)
        assert status == 400 and "YYYY-MM-DD" in body["error"], (bad, body)
    for bad in ("0", "x", "-1", "10000", "1.0"):
        status, body, _ = await get(port, line_path(f"ADD-{tag}", bad), BEARER)
        assert status == 400 and "line number" in body["error"], (bad, body)


async def test_lookups_refuse_requests_without_the_right_bearer_token(rig: StreamRig) -> None:
    member, tag = f"M-{random.randrange(10**9)}", f"{random.randrange(10**6)}"
    first, _ = patient_day(member, tag)
    rig.extra_env["STREAM_EDITS_WEB_TOKEN"] = TOKEN
    rig.start_worker()
    port = port_of(rig)
    await rig.produce(first)
    await published(rig, expected_verdicts(first))
    assert (await until(port, day_path(member), lambda r: r[0] == 200))[0] == 200
    refused = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"X-Stream-Edits-Forwarded": "1"},  # a forwarded request is checked like any other
    ]
    for path in (day_path(member), line_path(f"ADD-{tag}", 1), line_path("nothing", 1)):
        for headers in refused:
            status, body, response_headers = await get(port, path, headers)
            assert status == 401, (path, headers, status)
            assert response_headers["WWW-Authenticate"].startswith("Bearer"), headers
            assert set(body) == {"error"} and "bearer token" in body["error"]
            assert member not in str(body) and tag not in str(body)
    status, _, _ = await get(port, day_path(member), {"Authorization": f"bearer  {TOKEN} "})
    assert status == 200  # the scheme is case-insensitive, surrounding spaces ignored
    assert TOKEN not in (rig.workdir / "worker-0.log").read_text(errors="replace")


async def test_lookups_are_disabled_without_a_token(rig: StreamRig) -> None:
    member, tag = f"M-{random.randrange(10**9)}", f"{random.randrange(10**6)}"
    first, _ = patient_day(member, tag)
    rig.start_worker()
    port = port_of(rig)
    await rig.produce(first)
    await published(rig, expected_verdicts(first))
    for path in (day_path(member), line_path(f"ADD-{tag}", 1)):
        for headers in ({}, BEARER):
            status, body, _ = await until(port, path, lambda r: r[0] != 0, headers=headers)
            assert status == 403, (path, status, body)
            assert body == {
                "error": "look-ups are disabled: STREAM_EDITS_WEB_TOKEN is not set on this worker"
            }


async def test_either_worker_answers_for_members_the_other_holds(rig: StreamRig) -> None:
    partitions = rig.settings.partitions
    owner = owner_function(partitions)
    tag = f"{random.randrange(10**6)}"
    members = [f"M{n}-{tag}" for n in range(40)]
    by_partition = {p: next(m for m in members if owner(m) == p) for p in range(partitions)}
    lines: list[bytes] = []
    for p, member in by_partition.items():
        first, second = patient_day(member, f"{tag}-{p}")
        lines += first + second
    rig.extra_env["STREAM_EDITS_WEB_TOKEN"] = TOKEN
    rig.start_worker()
    rig.start_worker()
    ports = [port_of(rig, 0), port_of(rig, 1)]
    await rig.produce(lines)
    decisions = await published(rig, expected_verdicts(lines), timeout=180)

    held = await _settled_assignment(rig, ports)
    assert held[0] and held[1] and held[0] | held[1] == set(range(partitions)), held
    for p, member in by_partition.items():
        holder = 0 if p in held[0] else 1
        other = ports[1 - holder]  # ask the worker that does not hold the member
        day = sorted((k, v) for k, v in decisions.items() if v["member_id"] == member)
        status, body, _ = await until(other, day_path(member), lambda r: r[0] == 200)
        assert status == 200, (p, holder, body, rig.logs())
        assert body["lines"] == [v for _, v in day]
        for (claim_id, number), decision in day:
            status, body, _ = await until(other, line_path(claim_id, number), lambda r: r[0] == 200)
            assert (status, body) == (200, decision), (p, claim_id)
            # and the holder answers the same from its own store
            assert (await get(ports[holder], line_path(claim_id, number), BEARER))[1] == decision
        # Without the token the asking worker refuses before routing anything.
        assert (await get(other, day_path(member)))[0] == 401
    status, _, _ = await get(ports[0], line_path(f"nothing-{tag}", 1), BEARER)
    assert status == 404  # asked both workers' partitions


async def _settled_assignment(rig: StreamRig, ports: list[int]) -> list[set[int]]:
    """The members partitions each worker holds, once the two hold them all between them.

    Found through the look-ups: asked with the forwarded header, a worker answers a member of
    a partition it holds from its own store (404 for a member with no state) and any other
    with 503 (it never forwards a forwarded request)."""
    owner = owner_function(rig.settings.partitions)
    tag = "probe"
    probes = {
        p: next(f"P{n}-{tag}" for n in range(1000) if owner(f"P{n}-{tag}") == p)
        for p in range(rig.settings.partitions)
    }
    deadline = time.monotonic() + 90
    while True:
        held: list[set[int]] = [set(), set()]
        for index, port in enumerate(ports):
            for p, member in probes.items():
                status, _, _ = await get(
                    port, day_path(member), {**BEARER, "X-Stream-Edits-Forwarded": "1"}
                )
                if status == 404:  # answered from its own store: it holds the partition
                    held[index].add(p)
        if (
            held[0]
            and held[1]
            and not held[0] & held[1]
            and held[0] | held[1] == set(range(len(probes)))
        ):
            return held
        if time.monotonic() > deadline:
            return held
        await asyncio.sleep(1)


async def test_the_claim_index_is_recovered_from_the_changelog_with_the_table(
    rig: StreamRig,
) -> None:
    member, tag = f"M-{random.randrange(10**9)}", f"{random.randrange(10**6)}"
    first, second = patient_day(member, tag)
    rig.extra_env["STREAM_EDITS_WEB_TOKEN"] = TOKEN
    rig.start_worker()
    await rig.produce(first + second)
    decisions = await published(rig, expected_verdicts(first + second))
    add = line_path(f"ADD-{tag}", 1)
    assert (await until(port_of(rig, 0), add, lambda r: r[0] == 200))[0] == 200
    rig.stop_all()
    output = rig.settings.output_topic
    before = len(await rig.read_records(output, lambda found: False, 3))
    # A worker with an empty state dir rebuilds the table, index keys included, from the
    # changelog alone.
    rig.start_worker()
    port = port_of(rig, 1)
    for (claim_id, number), decision in decisions.items():
        status, body, _ = await until(port, line_path(claim_id, number), lambda r: r[0] == 200)
        assert (status, body) == (200, decision), (claim_id, rig.logs())
    status, body, _ = await until(port, day_path(member), lambda r: r[0] == 200)
    assert body["lines"] == [decisions[key] for key in sorted(decisions)]
    # Nothing was decided again (the input offsets were committed): the state, index keys
    # included, came from the changelog.
    assert len(await rig.read_records(output, lambda found: False, 3)) == before
