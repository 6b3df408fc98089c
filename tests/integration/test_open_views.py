"""What a running worker serves without the look-up token shows no protected health
information: every GET route the app registers (found by enumerating its aiohttp router, so
views added later are covered too), with path parameters filled with real member ids, claim ids
and NPIs of the data it holds, answers without any of them, and the worker's log holds none.
Faust's own table, router, graph and statistics views are off."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path
from urllib.parse import quote, urljoin

import aiohttp
import pytest
from pydantic import SecretStr

from stream_edits.runtime.app import create_app
from stream_edits.settings import Settings
from tests.factories import NPI_A, NPI_B
from tests.integration.stream_harness import StreamRig, expected_verdicts
from tests.integration.test_lookups import (
    DAY,
    TOKEN,
    day_path,
    patient_day,
    port_of,
    published,
    until,
)

pytestmark = pytest.mark.broker

PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
LINK = re.compile(r"""(?:src|href)=["']([^"'#?]+)""")
# Faust's built-in views (faust.web.apps: tables, router, graph, stats, metrics) at the paths
# they would have; "/" is the project's own dashboard.
FAUST_VIEWS = [
    "/table/",
    "/table/members/",
    "/table/members/{member}/",
    "/router/",
    "/router/topics",
    "/router/members/",
    "/router/members/{member}/",
    "/graph/",
    "/assignment/",
    "/performance/",
]


def registered_get_routes(settings: Settings, tmp_path: Path) -> list[dict[str, str]]:
    """The GET routes of the app a worker with these settings serves (its aiohttp router)."""
    app = create_app(settings.model_copy(update={"store": "memory://", "data_dir": tmp_path}))
    app.web.init_server()
    routes = []
    for route in app.web.web_app.router.routes():  # type: ignore[attr-defined]
        if route.method == "GET" and route.resource is not None:
            routes.append({k: str(v) for k, v in route.resource.get_info().items()})
    return routes


def paths_to_ask(routes: list[dict[str, str]], values: list[str]) -> list[str]:
    """Every route's path, each of its parameters filled with each of `values`; a static
    directory's files."""
    paths = []
    for info in routes:
        if "path" in info:
            paths.append(info["path"])
        elif "formatter" in info:
            names = PARAMETER.findall(info["formatter"])
            for filling in itertools.product(values, repeat=len(names)):
                quoted = {n: quote(v, safe="") for n, v in zip(names, filling, strict=True)}
                paths.append(PARAMETER.sub(lambda m, q=quoted: q[m.group(1)], info["formatter"]))
        elif "directory" in info:
            prefix = info["prefix"].rstrip("/")
            for file in sorted(Path(info["directory"]).rglob("*")):
                if file.is_file():
                    paths.append(f"{prefix}/{file.relative_to(info['directory'])}")
                    paths += [f"{prefix}/{quote(v, safe='')}" for v in values]
        else:
            raise AssertionError(f"a route of an unknown kind: {info}")
    return paths


async def test_no_route_shows_phi_without_the_token(rig: StreamRig, tmp_path: Path) -> None:
    member, tag = f"MEMBER-{random.randrange(10**9)}", f"{random.randrange(10**6):06d}"
    first, second = patient_day(member, tag)
    lines = first + second
    rig.extra_env["STREAM_EDITS_WEB_TOKEN"] = TOKEN
    rig.start_worker()
    port = port_of(rig)
    await rig.produce(lines)
    decisions = await published(rig, expected_verdicts(lines))
    claims = sorted({claim_id for claim_id, _ in decisions} | {f"VOIDS-{tag}", f"VOIDI-{tag}"})
    phi = [member, *claims, NPI_A, NPI_B]
    # The look-ups with the token do show it: the worker holds the data the scan asks about.
    status, body, _ = await until(port, day_path(member), lambda r: r[0] == 200)
    assert status == 200 and len(body["lines"]) == len(decisions), body

    settings = rig.settings.model_copy(update={"web_token": SecretStr(TOKEN)})
    routes = registered_get_routes(settings, tmp_path / "routes")
    formatters = {info.get("formatter", info.get("path")) for info in routes}
    assert {"/members/{member_id}/days/{date}/", "/lines/{claim_id}/{line_number}/"} <= formatters
    assert not any(f and f.startswith(("/table", "/router", "/graph")) for f in formatters)
    to_ask = paths_to_ask(routes, [member, claims[0], NPI_A, DAY, "1"])
    seen: set[str] = set()
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as session:
        while to_ask:
            path = to_ask.pop()
            if path in seen:
                continue
            seen.add(path)
            for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
                async with session.get(
                    f"http://127.0.0.1:{port}{path}", headers=headers, allow_redirects=False
                ) as response:
                    body_bytes = await response.read()
                    shown = body_bytes.decode(errors="replace") + str(dict(response.headers))
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                leaked = [value for value in phi if value in shown]
                assert not leaked, (path, headers, response.status, leaked)
                if path.startswith(("/members/", "/lines/")):
                    assert response.status == 401, (path, response.status)
                if response.content_type == "text/html":  # the pages' own assets and links
                    for link in LINK.findall(body_bytes.decode(errors="replace")):
                        absolute = urljoin(path, link)
                        if absolute.startswith("/"):
                            to_ask.append(absolute)
    assert statuses.get(200, 0) >= 3 and statuses.get(401, 0) >= 50, (statuses, sorted(seen))
    log = (rig.workdir / "worker-0.log").read_text(errors="replace")
    assert "[INFO]" in log, "the worker did not log at INFO"
    leaked = [value for value in [*phi, TOKEN] if value in log]
    assert not leaked, leaked


async def test_faust_own_views_answer_404_on_a_running_worker(rig: StreamRig) -> None:
    member = f"MEMBER-{random.randrange(10**9)}"
    first, _ = patient_day(member, "faust")
    rig.start_worker()
    port = port_of(rig)
    await rig.produce(first)
    await published(rig, expected_verdicts(first))
    status, _, _ = await until(port, day_path(member), lambda r: r[0] == 403, headers={})
    assert status == 403  # serving: the look-ups, disabled without a token, say so
    for view in FAUST_VIEWS:
        path = view.replace("{member}", quote(member, safe=""))
        status, body, _ = await until(port, path, lambda r: r[0] != 0, headers={})
        assert status == 404, (path, status, str(body)[:200])
        assert member not in str(body)
