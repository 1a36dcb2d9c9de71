"""The per-path answers the request guard and admission keep (issue 14.12: a scan of every
route per request) never outlive the route table: a route included later is guarded."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.api.deps import Actor

AUTH = {"Authorization": "Bearer test-token"}


def test_a_route_included_after_a_cached_miss_still_needs_the_token(ctx):
    app = create_app(ctx)
    with TestClient(app) as c:
        for _ in range(2):  # answered twice: the second from the cache
            assert c.post("/api/late/act", json={}).status_code in (404, 405)
        late = APIRouter()

        @late.post("/api/late/act")
        async def act(actor: Actor) -> dict[str, str]:
            return {"actor": actor}

        app.include_router(late)
        # the guard answers 401 before the body (over the size limit: else 413) is read
        big = b"x" * (1_048_576 + 1)
        r = c.post("/api/late/act", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 401, r.text
        assert c.post("/api/late/act", json={}, headers=AUTH).json() == {"actor": "api-token"}
        # reads keep working and stay unauthenticated
        assert c.get("/api/desired-state").status_code == 200
