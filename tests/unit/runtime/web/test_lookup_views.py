"""The look-up views on Faust's aiohttp app (aiohttp's test server, no broker): answers from the
local store, routing to the worker Faust's assignment metadata names, fan-out by claim id, and
what they answer while state moves or a worker does not answer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
import orjson
import pytest
from aiohttp import web as aiohttp_web
from aiohttp.test_utils import TestClient, TestServer
from faust.assignor.client_assignment import ClientAssignment
from faust.assignor.partition_assignor import PartitionAssignor
from faust.types import TableT
from pydantic import SecretStr

from stream_edits.rules.loader import load_rules
from stream_edits.runtime.placement import owner_function
from stream_edits.runtime.state.claim_index import INDEX_SEPARATOR, is_member_key
from stream_edits.runtime.state.tables import FaustMemberTable
from stream_edits.runtime.web.lookups import FORWARDED, add_lookups
from stream_edits.settings import Settings
from tests.factories import DOS, line
from tests.unit.runtime.fakes import DictTable, FakeProducer, FakeRecord, fake_processor

PARTITIONS = 4
TOKEN = "views-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
OWNER = owner_function(PARTITIONS)
MEMBERS = {p: next(f"M{n}" for n in range(100) if OWNER(f"M{n}") == p) for p in range(PARTITIONS)}
Published = dict[tuple[str, int], dict[str, Any]]


async def _state() -> tuple[dict[bytes, bytes], Published]:
    """Every member of MEMBERS with a revised add-on and a stub on DOS; the same claim id
    "SHARED" held by the members of partitions 0 and 2. The table's keys and values, and the
    latest decision published per (member, claim, line)."""
    producer, table = FakeProducer(), DictTable()
    processor = fake_processor(table, producer=producer, partitions=PARTITIONS)
    events = []
    for p, member in MEMBERS.items():
        events += [
            line(f"ADD-{p}", 1, "64462", member_id=member, minutes=5),
            line(f"STUB-{p}", 1, "99213", member_id=member, minutes=6),
            line(f"PRIM-{p}", 1, "64461", member_id=member, minutes=0),
        ]
    events += [line("SHARED", 1, "99213", member_id=MEMBERS[p]) for p in (0, 2)]
    for offset, event in enumerate(events):
        record = FakeRecord(
            offset, event.model_dump_json().encode(), partition=OWNER(event.member_id)
        )
        await processor.process_batch([record], {})
    await processor.settle()
    published: Published = {}
    for topic, _, value in producer.sent:
        if topic == "claim-edits":
            d = orjson.loads(value or b"")
            key = (d["member_id"], d["claim_id"], d["line_number"])
            published[key] = {k: v for k, v in d.items() if k not in ("decided_at", "source")}
    return table.data, published


def _member_of(key: bytes) -> str:
    return (key if is_member_key(key) else key.rsplit(INDEX_SEPARATOR, 1)[1]).decode()


@dataclass
class Worker:
    app: faust.App
    client: TestClient  # type: ignore[type-arg]

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def hold(self, held: list[int], data: Mapping[bytes, bytes]) -> None:
        """Take these partitions: the assignment and the state of their members."""
        table = cast(TableT[bytes, bytes], self.app.tables["members"])
        store = FaustMemberTable(table)
        assignor = self.app.assignor
        assert isinstance(assignor, PartitionAssignor)
        assignor._assignment = ClientAssignment(actives={store.changelog_topic: held}, standbys={})
        for key, value in data.items():
            partition = OWNER(_member_of(key))
            if partition in held:
                store.write(partition, [(key, value)])

    def metadata(self, hosts: Mapping[str, list[int]]) -> None:
        """The group's assignment metadata as this worker knows it: URL → partitions."""
        changelog = self.app.tables["members"].changelog_topic.get_topic_name()
        assignor = self.app.assignor
        assert isinstance(assignor, PartitionAssignor)
        assignor.changelog_distribution = {url: {changelog: p} for url, p in hosts.items()}

    async def get(self, path: str, headers: Mapping[str, str] = BEARER) -> tuple[int, Any]:
        response = await self.client.get(path, headers=dict(headers))
        return response.status, await response.json()


async def _worker(tmp_path: Path, name: str, token: str | None = TOKEN) -> Worker:
    settings = Settings(
        app_id=name,
        store="memory://",
        data_dir=tmp_path / name,
        partitions=PARTITIONS,
        web_token=SecretStr(token) if token else None,
    )
    app = faust.App(name, store="memory://", datadir=str(tmp_path / name), autodiscover=False)
    table = app.Table("members", partitions=PARTITIONS, key_type=bytes, value_type=bytes)
    add_lookups(app, settings, load_rules(), cast(TableT[bytes, bytes], table))
    app.web.init_server()
    client = TestClient(TestServer(app.web.web_app))  # type: ignore[attr-defined]
    await client.start_server()
    app.conf.canonical_url = str(client.make_url(""))  # type: ignore[assignment]
    return Worker(app, client)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Worker, Worker, Published]]:
    """Two workers: A holds partitions 0 and 1, B 2 and 3; both know it."""
    data, published = await _state()
    a, b = await _worker(tmp_path, "a"), await _worker(tmp_path, "b")
    a.hold([0, 1], data)
    b.hold([2, 3], data)
    hosts = {a.url: [0, 1], b.url: [2, 3]}
    a.metadata(hosts)
    b.metadata(hosts)
    yield a, b, published
    for worker in (a, b):
        await worker.client.close()
        await worker.app.http_client.close()


def _day(published: Published, member: str) -> list[dict[str, Any]]:
    return [v for (m, _, _), v in sorted(published.items()) if m == member]


async def test_a_member_day_answers_on_either_worker(
    pair: tuple[Worker, Worker, Published],
) -> None:
    a, b, published = pair
    for p, member in MEMBERS.items():
        expected = _day(published, member)
        assert len(expected) == 3 + (p in (0, 2))
        assert [d["revision"] for d in expected if d["claim_id"].startswith("ADD")] == [2]
        for worker in (a, b):  # one holds it, the other forwards
            status, body = await worker.get(f"/members/{member}/days/{DOS.isoformat()}/")
            assert status == 200, (p, body)
            assert body == {
                "member_id": member,
                "date_of_service": DOS.isoformat(),
                "lines": expected,
            }


async def test_a_line_answers_on_either_worker_by_fan_out(
    pair: tuple[Worker, Worker, Published],
) -> None:
    a, b, published = pair
    for (_, claim_id, number), decision in published.items():
        if claim_id == "SHARED":
            continue
        for worker in (a, b):
            assert await worker.get(f"/lines/{claim_id}/{number}/") == (200, decision)
    for worker in (a, b):
        assert await worker.get("/lines/NOSUCH/1/") == (404, {"error": "no such line"})
        assert await worker.get("/lines/ADD-0/2/") == (404, {"error": "no such line"})
        # "SHARED" is held by a member on each worker: ambiguous, and no member named.
        status, body = await worker.get("/lines/SHARED/1/")
        assert (status, body) == (409, {"error": "more than one member holds this claim id"})


async def test_a_forwarded_request_is_answered_locally_or_refused_never_forwarded_again(
    pair: tuple[Worker, Worker, Published],
) -> None:
    a, b, _ = pair
    forwarded = {**BEARER, FORWARDED: "1"}
    member_of_b = MEMBERS[2]
    status, body = await a.get(f"/members/{member_of_b}/days/{DOS.isoformat()}/", forwarded)
    assert status == 503 and "rebalanced" in body["error"]
    assert await a.get("/lines/ADD-2/1/", forwarded) == (404, {"error": "no such line"})
    # Assignments in flux: each worker believes the other holds partition 2. A asks B, which
    # does not ask A again.
    a.hold([0, 1], {})
    b.hold([3], {})
    hosts = {a.url: [0, 1], b.url: [2, 3]}
    b.metadata({a.url: [0, 1, 2], b.url: [3]})
    a.metadata(hosts)
    status, body = await a.get(f"/members/{member_of_b}/days/{DOS.isoformat()}/")
    # B's own refusal, passed on at once (a loop would end in A's timeout: "did not answer").
    assert (status, body) == (
        503,
        {"error": "this worker's state is being rebalanced or recovered"},
    )


async def test_while_rebalancing_or_recovering_the_answer_is_503_with_retry_after(
    pair: tuple[Worker, Worker, Published],
) -> None:
    a, _, _ = pair
    for flag in ("rebalancing", "in_recovery"):
        setattr(a.app, flag, True)
        for path in (f"/members/{MEMBERS[0]}/days/{DOS.isoformat()}/", "/lines/ADD-0/1/"):
            response = await a.client.get(path, headers=BEARER)
            assert response.status == 503 and response.headers["Retry-After"] == "1", (flag, path)
        setattr(a.app, flag, False)
    assert (await a.get(f"/members/{MEMBERS[0]}/days/{DOS.isoformat()}/"))[0] == 200


async def test_a_worker_that_does_not_answer_gives_503_not_404(
    pair: tuple[Worker, Worker, Published],
) -> None:
    a, b, _ = pair
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    a.metadata({a.url: [0, 1], dead: [2, 3]})
    status, body = await a.get(f"/members/{MEMBERS[2]}/days/{DOS.isoformat()}/")
    assert status == 503 and "did not answer" in body["error"]
    status, body = await a.get("/lines/ADD-2/1/")
    assert status == 503 and "did not answer" in body["error"]
    assert (await a.get("/lines/ADD-0/1/"))[0] == 200  # found here: still answered
    a.metadata({a.url: [0, 1]})  # nobody holds 2 and 3 yet
    assert (await a.get(f"/members/{MEMBERS[2]}/days/{DOS.isoformat()}/"))[0] == 503


async def test_unknown_and_malformed_requests(pair: tuple[Worker, Worker, Published]) -> None:
    a, _, _ = pair
    member = MEMBERS[0]
    assert await a.get(f"/members/{member}/days/2030-01-01/") == (
        404,
        {"error": "no lines of this member on this date of service"},
    )
    nobody = next(f"X{n}" for n in range(100) if OWNER(f"X{n}") == 0)
    assert await a.get(f"/members/{nobody}/days/{DOS.isoformat()}/") == (
        404,
        {"error": "no state for this member"},
    )
    for bad in ("2025-3-14", "20250314", "2025-02-30", "today", "2025-03-14T00:00", "２０25-03-14"):
        status, body = await a.get(f"/members/{member}/days/{bad}/")
        assert (status, body) == (400, {"error": "the date must be YYYY-MM-DD"}), bad
    for bad in ("0", "01", "-1", "10000", "x", "1.5", "１", "1١"):
        status, body = await a.get(f"/lines/ADD-0/{bad}/")
        assert status == 400 and "line number" in body["error"], bad


async def test_the_url_other_workers_route_to_is_the_web_url_setting(tmp_path: Path) -> None:
    app = faust.App("url", store="memory://", datadir=str(tmp_path), autodiscover=False)
    table = cast(
        TableT[bytes, bytes], app.Table("members", partitions=4, key_type=bytes, value_type=bytes)
    )
    settings = Settings(web_url="http://worker-7.internal:6066", data_dir=tmp_path)
    add_lookups(app, settings, load_rules(), table)
    assert str(app.conf.canonical_url) == "http://worker-7.internal:6066"
    default = faust.App("url2", web_host="10.1.2.3", web_port=7000, autodiscover=False)
    add_lookups(default, Settings(data_dir=tmp_path), load_rules(), table)
    assert str(default.conf.canonical_url) == "http://10.1.2.3:7000"


def test_aiohttp_web_is_what_faust_serves() -> None:
    # The views build responses through Faust's View, which wraps aiohttp's.
    app = faust.App("driver", autodiscover=False)
    assert isinstance(app.web.web_app, aiohttp_web.Application)  # type: ignore[attr-defined]
