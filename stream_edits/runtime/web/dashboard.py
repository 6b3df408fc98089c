"""The operator dashboard at `/`: one HTML page, its script and its style sheet, served from the
package (`stream_edits/runtime/web/static/`). The page polls `/stats/` every 2 s and draws its
charts
itself (inline SVG): no CDN, no third-party code, so it works in a network with no internet.
It shows counts only; `/stats/` holds no member, claim or provider identifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import faust
from faust.web import Request, Response, View
from faust.web.base import PRODUCTION_BLUEPRINTS

PAGE = "dashboard.html"
# The only files `/static/` serves: a request names one of these or gets a 404, so no path
# (`..`, an encoded slash, another package file) can reach anything else.
ASSET_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# The page refers to its assets as `/static/NAME?v=VERSION` (a digest of their content): the
# browser may keep them as long as it likes, and a new version of the package is a new URL. The
# page itself is revalidated at every load.
VERSION_MARK = "__ASSET_VERSION__"
PAGE_CACHE = "no-cache"
VERSIONED_CACHE = "public, max-age=31536000, immutable"
UNVERSIONED_CACHE = "no-cache"
# Same origin only: the page loads nothing from elsewhere and talks only to its own worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Dashboard:
    """The page (asset version filled in), the assets and their version."""

    page: str
    assets: dict[str, str]
    version: str


def load_dashboard() -> Dashboard:
    """Read the page and its assets from the package; a missing file fails here, at start."""
    static = resources.files("stream_edits.runtime.web") / "static"
    assets = {name: (static / name).read_text(encoding="utf-8") for name in sorted(ASSET_TYPES)}
    digest = hashlib.sha256()
    for name, text in assets.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    version = digest.hexdigest()[:16]
    page = (static / PAGE).read_text(encoding="utf-8")
    if VERSION_MARK not in page:
        raise RuntimeError(f"{PAGE} does not refer to its assets with ?v={VERSION_MARK}")
    return Dashboard(page.replace(VERSION_MARK, version), assets, version)


def leave_root_to_the_project(app: faust.App) -> None:
    """Take Faust's "production index" (`{"status": "OK"}`) off `/`, so the dashboard is the
    only view there.

    Faust mounts that blueprint at `/` whenever its statistics views are off
    (`faust.web.base.Web._enabled_blueprints`, faust-streaming 0.15.3), with no setting to leave
    it out, and its `BlueprintManager` has no public way to remove one. The manager applies its
    private `_enabled` list when the web server starts; the index is dropped from that list
    here, the one place the project touches it. `tests/unit/runtime/test_faust_internals.py`
    fails if that list or the blueprint's name changes.
    """
    blueprints = app.web.blueprints
    if blueprints.applied:
        raise RuntimeError("the dashboard must be added before the web server starts")
    production = {blueprint for _, blueprint in PRODUCTION_BLUEPRINTS}
    blueprints._enabled = [
        (prefix, blueprint)
        for prefix, blueprint in blueprints._enabled
        if blueprint not in production
    ]


def add_dashboard(app: faust.App) -> None:
    """Serve the dashboard at `/` and its assets at `/static/NAME`."""
    dashboard = load_dashboard()
    leave_root_to_the_project(app)

    @app.page("/")
    class DashboardPage(View):
        """The operator dashboard (HTML; the numbers come from /stats/, fetched by the page)."""

        async def get(self, request: Request) -> Response:
            return self.html(
                dashboard.page,
                headers={
                    **COMMON_HEADERS,
                    "Cache-Control": PAGE_CACHE,
                    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                },
            )

    @app.page("/static/{name}")
    class DashboardAsset(View):
        """The dashboard's script and style sheet; any other name is a 404."""

        async def get(self, request: Request, name: str) -> Response:
            if name not in dashboard.assets:
                raise self.NotFound("no such asset")
            versioned = request.query.get("v") == dashboard.version
            return self.text(
                dashboard.assets[name],
                content_type=ASSET_TYPES[name],
                headers={
                    **COMMON_HEADERS,
                    "Cache-Control": VERSIONED_CACHE if versioned else UNVERSIONED_CACHE,
                },
            )
