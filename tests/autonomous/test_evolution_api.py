"""/api/evolution/*: status, history, manual rollback (sticky), quarantine clear; token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.testing import make_context

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    ctx = make_context(tmp_path)
    facade = EvolutionFacade(ctx.store, ctx.clock)
    ctx.subsystems["evolution"] = facade
    with TestClient(create_app(ctx)) as c:
        yield c, facade
    ctx.store.close()


def test_status_rollback_history_and_quarantine(api: tuple[TestClient, Any]) -> None:
    c, facade = api
    facade.rollouts.create(RolloutState("nexus", "1.0.0", "1.1.0", 0, 0.0), 0.0)
    st = c.get("/api/evolution/status").json()
    assert [r["to_version"] for r in st["rollouts"]] == ["1.1.0"] and st["quarantined"] == []
    assert c.post("/api/evolution/rollback", json={"service": "nexus"}).status_code == 401
    r = c.post("/api/evolution/rollback", json={"service": "nexus", "reason": "looks slow"},
               headers=AUTH)
    assert r.status_code == 200 and r.json()["quarantined"] == "1.1.0"
    st = c.get("/api/evolution/status").json()
    assert st["rollouts"] == [] and st["quarantined"] == [{"service": "nexus",
                                                           "version": "1.1.0"}]
    h = c.get("/api/evolution/history").json()
    assert [e["action"] for e in h] == ["rollback", "start"]
    assert "looks slow (by api-token)" in h[0]["reason"]
    again = c.post("/api/evolution/rollback", json={"service": "nexus"}, headers=AUTH)
    assert again.status_code == 404 and "no running rollout" in again.text
    clr = c.post("/api/evolution/quarantine/clear",
                 json={"service": "nexus", "version": "1.1.0"}, headers=AUTH)
    assert clr.status_code == 200
    assert c.post("/api/evolution/quarantine/clear", json={"service": "nexus",
                  "version": "1.1.0"}, headers=AUTH).status_code == 409
    assert c.post("/api/evolution/rollback", json={"service": ""},
                  headers=AUTH).status_code == 422
