"""Dashboard routes without a browser: the policy handed to the page, the subsystems state,
and the signed stream token that opens the event stream when reads need the bearer token."""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi.testclient import TestClient

from autonomous.api import stream_token
from autonomous.api.app import create_app
from autonomous.core.clock import FakeClock
from autonomous.testing import calm_gates, copy_default_tree, make_context

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _root(tmp_path: Path, *, auth_reads: bool) -> Path:
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    pol = root / "policies" / "dashboard.yaml"
    pol.write_text(pol.read_text().replace("stream_lifetime_seconds: 30",
                                           "stream_lifetime_seconds: 0.3")
                   .replace("retry_ms: 1000", "retry_ms: 1500")
                   .replace("decisions: 15", "decisions: 7"))
    if auth_reads:
        cfg = root / "config" / "autonomous.yaml"
        cfg.write_text(cfg.read_text().replace("authenticated_reads: false",
                                               "authenticated_reads: true"))
    return root


def _policy_attr(page: str) -> dict:
    raw = page.split('data-policy="', 1)[1].split('"', 1)[0]
    return json.loads(html.unescape(raw))


def test_page_carries_the_dashboard_policy_and_stream_uses_it(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, root=_root(tmp_path, auth_reads=False))
    try:
        with TestClient(create_app(ctx)) as c:
            page = c.get("/dashboard").text
            pol = _policy_attr(page)
            assert pol["rows"]["decisions"] == 7 and pol["retry_ms"] == 1500
            assert 'data-auth-reads="false"' in page
            for js in ("dashboard-lib.js", "dashboard-charts.js", "dashboard-ops.js",
                       "dashboard-learning.js", "dashboard-health.js"):
                assert f"/dashboard/static/{js}" in page
                assert c.get(f"/dashboard/static/{js}").status_code == 200
            assert "healing" not in c.get("/dashboard/state").json()["subsystems"]
            ctx.subsystems["healing"] = object()
            assert "healing" in c.get("/dashboard/state").json()["subsystems"]
            with c.stream("GET", "/dashboard/events") as r:  # ends after 0.3 s (policy)
                assert r.status_code == 200
                body = b"".join(r.iter_bytes())
            assert body.startswith(b"retry: 1500\nevent: hello")
    finally:
        ctx.store.close()


def test_authenticated_reads_open_the_stream_with_a_signed_query_token(tmp_path: Path) -> None:
    clock = FakeClock()
    ctx = make_context(tmp_path, root=_root(tmp_path, auth_reads=True), clock=clock)
    try:
        with TestClient(create_app(ctx)) as c:
            r = c.get("/dashboard/events")
            assert r.status_code == 401 and "bearer" in r.json()["detail"]
            assert c.post("/dashboard/stream-token").status_code == 401
            assert c.get("/dashboard/events?st=123.abc").status_code == 401
            issued = c.post("/dashboard/stream-token", headers=AUTH).json()
            assert issued["ttl_seconds"] == 300
            st = issued["token"]
            with c.stream("GET", f"/dashboard/events?st={st}") as r:
                assert r.status_code == 200
                assert b"".join(r.iter_bytes()).startswith(b"retry: 1500")
            # the stream token opens the stream only, not any other read
            assert c.get(f"/api/governance/mode?st={st}").status_code == 401
            assert c.get("/dashboard/state", headers=AUTH).status_code == 200
            assert 'data-auth-reads="true"' in c.get("/dashboard", headers=AUTH).text
            clock.advance(301)
            r = c.get(f"/dashboard/events?st={st}")
            assert r.status_code == 401
    finally:
        ctx.store.close()


def test_stream_token_problems_are_named() -> None:
    tok, exp = stream_token.issue("k", 1000.0, 60)
    assert exp == 1060 and stream_token.problem(tok, "k", 1059.0) is None
    assert "expired" in (stream_token.problem(tok, "k", 1060.0) or "")
    assert stream_token.problem(tok, "other-key", 1000.0) == "invalid stream token"
    assert "malformed" in (stream_token.problem("nodot", "k", 1000.0) or "")
    assert "missing" in (stream_token.problem(None, "k", 1000.0) or "")
    forged = f"{exp + 3600}.{tok.split('.')[1]}"  # a later expiry with the old signature
    assert stream_token.problem(forged, "k", 1000.0) == "invalid stream token"
    assert stream_token.from_query(b"a=1&st=9.x") == "9.x"
