"""The dashboard's views on Faust's own aiohttp web app, served by aiohttp's test server (no
broker, no worker): the page at `/`, its assets from the package, nothing else under `/static/`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from stream_edits.runtime.app import create_app
from stream_edits.runtime.web.dashboard import (
    CONTENT_SECURITY_POLICY,
    VERSION_MARK,
    add_dashboard,
    load_dashboard,
)
from stream_edits.settings import Settings

STATIC = resources.files("stream_edits.runtime.web") / "static"


def bare_app(**settings: object) -> faust.App:
    """A Faust app with the web settings the worker uses, and the dashboard."""
    app = faust.App(
        "dashboard-test",
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        autodiscover=False,
        **settings,
    )
    add_dashboard(app)
    return app


async def serve(app: faust.App) -> TestClient:  # type: ignore[type-arg]
    """A client of `app`'s web server as the worker starts it (blueprints applied)."""
    app.web.init_server()
    client = TestClient(TestServer(app.web.web_app))  # type: ignore[attr-defined]
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    c = await serve(bare_app())
    yield c
    await c.close()


async def test_root_serves_the_dashboard_page(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await response.text()
    assert page.startswith("<!doctype html>")
    assert 'id="chart-throughput"' in page and 'id="readiness"' in page
    version = load_dashboard().version
    assert f'src="static/dashboard.js?v={version}"' in page
    assert f'href="static/dashboard.css?v={version}"' in page
    assert VERSION_MARK not in page


async def test_faust_production_index_no_longer_answers_at_root(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    routes_at_root = [
        route
        for route in client.app.router.routes()
        if route.resource is not None and route.resource.canonical == "/"
    ]
    assert {route.method for route in routes_at_root} == {"GET", "HEAD"}
    assert len(routes_at_root) == 2, routes_at_root  # ours only: one GET, one HEAD
    response = await client.get("/")
    assert "status" not in (await response.text())[:200]


async def test_head_of_root_answers_without_a_body(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.head("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert await response.read() == b""


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
    ],
)
async def test_assets_are_served_from_the_package_with_their_content_type(
    client: TestClient,  # type: ignore[type-arg]
    name: str,
    content_type: str,
) -> None:
    version = load_dashboard().version
    versioned = await client.get(f"/static/{name}", params={"v": version})
    assert versioned.status == 200
    assert versioned.headers["Content-Type"] == content_type
    assert versioned.headers["X-Content-Type-Options"] == "nosniff"
    assert await versioned.read() == (STATIC / name).read_bytes()
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # another (older) version, or none: served, but revalidated every time
    for params in ({"v": "0" * 16}, {}):
        other = await client.get(f"/static/{name}", params=params)
        assert other.status == 200
        assert other.headers["Cache-Control"] == "no-cache"
        assert await other.read() == (STATIC / name).read_bytes()


def test_the_asset_version_is_a_digest_of_the_assets() -> None:
    dashboard = load_dashboard()
    digest = hashlib.sha256()
    for name in ("dashboard.css", "dashboard.js"):
        digest.update(name.encode() + b"\0" + (STATIC / name).read_bytes() + b"\0")
    assert dashboard.version == digest.hexdigest()[:16]  # new content, new URL
    assert set(dashboard.assets) == {"dashboard.js", "dashboard.css"}


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/dashboard.html",  # the page is served at /, not as a file
        "/static/__init__.py",
        "/static/../settings.py",
        "/static/..%2Fsettings.py",
        "/static/%2e%2e%2fdashboard.py",
        "/static/..%2F..%2Fsettings.py",
        "/static/dashboard.js%2F..%2F..%2Fsettings.py",
        "/static/%2E%2E/%2E%2E/settings.py",
        "/static/",
        "/static",
    ],
)
async def test_nothing_else_is_served_under_static(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
) -> None:
    response = await client.get(URL(path, encoded=True))
    body = await response.read()
    assert response.status == 404, (path, response.status, body[:200])
    assert b"import" not in body and b"pydantic" not in body


async def test_the_worker_app_serves_the_dashboard_at_root_next_to_stats(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "state"))
    client = await serve(app)
    try:
        page = await client.get("/")
        assert page.status == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert 'id="total-events"' in await page.text()
        # /stats/, which the page polls, is still the worker's own view next to it
        paths = {r.resource.canonical for r in client.app.router.routes() if r.resource}
        assert {"/", "/stats/", "/static/{name}"} <= paths
    finally:
        await client.close()


def test_adding_the_dashboard_after_the_server_started_fails_loudly() -> None:
    app = faust.App("dashboard-late", web_stats_enabled=False, autodiscover=False)
    app.web.init_server()
    with pytest.raises(RuntimeError, match="before the web server starts"):
        add_dashboard(app)


def test_every_element_the_script_writes_is_on_the_page() -> None:
    script = (STATIC / "dashboard.js").read_text()
    page = (STATIC / "dashboard.html").read_text()
    written = set(re.findall(r"""(?:\$|setText|setCount|setMs)\("([a-z0-9-]+)"\s*[,)]""", script))
    assert len(written) > 25, written  # the pattern finds the script's targets
    present = set(re.findall(r'id="([a-z0-9-]+)"', page))
    missing = written - present
    assert missing == set(), f"the script writes to ids the page lacks: {missing}"


def test_the_page_and_its_assets_name_no_other_origin() -> None:
    page = (STATIC / "dashboard.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references, "the page references its assets"
    for reference in references:
        assert "//" not in reference and not reference.startswith("/"), reference
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        text = (STATIC / name).read_text()
        urls = set(re.findall(r"\w+://[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), f"{name} names another origin: {urls}"
        assert "@import" not in text and "url(" not in text.replace("data:,", "")
