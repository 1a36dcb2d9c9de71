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


def test_update_accepts_a_set_in_dependency_order_and_rejects_bad_ones(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from autonomous.evolution.update_set import UpdateSetFacade

    @dataclass
    class Svc:
        depends_on: list[str] = field(default_factory=list)
        version: str = "1.0.0"
        traffic: object | None = "front"

    services = {"nexus": Svc(), "robot": Svc(["nexus"]), "plain": Svc(traffic=None)}
    ctx = make_context(tmp_path)
    ctx.subsystems["evolution"] = EvolutionFacade(ctx.store, ctx.clock)
    ctx.subsystems["update_sets"] = UpdateSetFacade(ctx.store, ctx.clock, lambda: services,
                                                    lambda: {("nexus", "9.0.0")})
    try:
        with TestClient(create_app(ctx)) as c:
            body = {"services": [{"service": "robot", "version": "2.0.0"},
                                 {"service": "nexus", "version": "2.0.0"}]}
            woken: list[str] = []
            ctx.triggers["evolution_sets"] = lambda: woken.append("evolution_sets")
            assert c.post("/api/evolution/update", json=body).status_code == 401
            r = c.post("/api/evolution/update", json=body, headers=AUTH)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["state"] == "pending"
            assert woken == ["evolution_sets"]  # its owner takes it up now
            assert [m["service"] for m in out["members"]] == ["nexus", "robot"]
            again = c.post("/api/evolution/update", json=body, headers=AUTH)
            assert again.status_code == 409 and "open update set" in again.text
            for bad, code, msg in [
                    ([{"service": "ghost", "version": "2"}], 404, "not declared"),
                    ([{"service": "plain", "version": "2"}], 409, "spec.traffic"),
                    ([{"service": "nexus", "version": "9.0.0"}], 409, "quarantined"),
                    ([{"service": "nexus", "version": "1.0.0"}], 409, "already declares")]:
                r = c.post("/api/evolution/update", json={"services": bad}, headers=AUTH)
                assert r.status_code == code and msg in r.text, r.text
            assert c.post("/api/evolution/update", json={"services": []},
                          headers=AUTH).status_code == 422
            st = c.get("/api/evolution/status").json()
            assert [s["id"] for s in st["sets"]] == [out["id"]]
            assert [s["state"] for s in c.get("/api/evolution/sets").json()] == ["pending"]
    finally:
        ctx.store.close()
