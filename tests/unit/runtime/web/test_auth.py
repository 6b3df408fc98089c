"""The bearer-token guard of the PHI views: disabled without a token, 401 with a Bearer
challenge without the right one, the comparison constant-time on bytes, the token never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.web import Request, Response, View
from pydantic import SecretStr

from stream_edits.runtime.web import auth
from stream_edits.runtime.web.auth import DISABLED, BearerGuard, TokenTooShort

TOKEN = "guard-test-token-0123456789"


def _app(guard: BearerGuard) -> faust.App:
    app = faust.App("auth-test", web_stats_enabled=False, autodiscover=False)

    @app.page("/phi/")
    class Guarded(View):
        async def get(self, request: Request) -> Response:
            denied = guard.deny(self, request)
            return denied if denied is not None else self.json({"phi": "served"})

    return app


async def _client(guard: BearerGuard) -> TestClient:  # type: ignore[type-arg]
    app = _app(guard)
    app.web.init_server()
    client = TestClient(TestServer(app.web.web_app))  # type: ignore[attr-defined]
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    c = await _client(BearerGuard(SecretStr(TOKEN)))
    yield c
    await c.close()


async def test_the_right_bearer_token_is_served(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/phi/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and await response.json() == {"phi": "served"}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}0",
        f"Bearer {TOKEN.upper()}",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        TOKEN,
        f"Bearer{TOKEN}",
    ],
)
async def test_anything_else_is_401_with_a_bearer_challenge(
    client: TestClient,  # type: ignore[type-arg]
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/phi/", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="stream-edits"'
    body = await response.text()
    assert "bearer token is required" in body and TOKEN not in body and "phi" not in body


async def test_without_a_token_the_view_is_disabled_for_everyone() -> None:
    client = await _client(BearerGuard(None))
    try:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer "}):
            response = await client.get("/phi/", headers=headers)
            assert response.status == 403
            assert await response.json() == {"error": DISABLED}
            assert "WWW-Authenticate" not in response.headers
        assert "STREAM_EDITS_WEB_TOKEN" in DISABLED and "disabled" in DISABLED
    finally:
        await client.close()


def test_the_comparison_is_hmac_compare_digest_on_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return False  # the guard must take the answer from compare_digest

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    guard = BearerGuard(SecretStr(TOKEN))
    assert guard.authorized(f"Bearer {TOKEN}") is False
    assert calls == [(TOKEN.encode(), TOKEN.encode())]
    assert all(isinstance(x, bytes) for pair in calls for x in pair)
    monkeypatch.undo()
    assert guard.authorized(f"Bearer {TOKEN}") is True
    assert guard.authorized("Bearer é" + TOKEN) is False  # non-ASCII: bytes, not a TypeError


def test_a_short_token_stops_the_worker_without_showing_it() -> None:
    with pytest.raises(TokenTooShort) as raised:
        BearerGuard(SecretStr("short-secret"))
    assert "short-secret" not in str(raised.value) and "16" in str(raised.value)
    assert BearerGuard(SecretStr("x" * 16)).enabled
    assert not BearerGuard(None).enabled
    assert TOKEN not in repr(BearerGuard(SecretStr(TOKEN)))
