"""``atlas-autonomous rollout ...`` against the real app (TestClient in place of the HTTP hop)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.cli import cmd_rollout
from autonomous.cli.main import dispatch
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.testing import make_context


@pytest.fixture
def facade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EvolutionFacade]:
    monkeypatch.setenv("COLUMNS", "200")
    ctx = make_context(tmp_path)
    f = EvolutionFacade(ctx.store, ctx.clock)
    ctx.subsystems["evolution"] = f
    with TestClient(create_app(ctx)) as tc:
        class Client:
            def __init__(self, args: Any) -> None:
                self.base = "http://testserver"

            def request(self, method: str, path: str, **kw: Any) -> Any:
                headers = kw.pop("headers", {})
                headers["Authorization"] = "Bearer test-token"
                return tc.request(method, path, headers=headers, **kw)

        monkeypatch.setattr(cmd_rollout, "ApiClient", Client)
        yield f
    ctx.store.close()


def test_status_rollback_history_clear(facade: EvolutionFacade,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    facade.rollouts.create(RolloutState("robot", "1.0", "1.1", 0, 0.0), 0.0)
    assert dispatch(["rollout", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rollouts"][0]["service"] == "robot"
    assert dispatch(["rollout", "status"]) == 0
    assert "robot" in capsys.readouterr().out
    assert dispatch(["rollout", "rollback", "robot", "--reason", "5xx"]) == 0
    assert "1.1 quarantined" in capsys.readouterr().out
    assert dispatch(["rollout", "status", "--watch", "0.01"]) == 0  # nothing runs: returns
    assert "quarantined" in capsys.readouterr().out
    assert dispatch(["rollout", "history", "--json"]) == 0
    assert [e["action"] for e in json.loads(capsys.readouterr().out)] == ["rollback", "start"]
    assert dispatch(["rollout", "rollback", "robot"]) == 1
    assert "no running rollout" in capsys.readouterr().err
    assert dispatch(["rollout", "clear", "robot", "1.1"]) == 0


def test_rollout_set_creates_an_ordered_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import dataclass, field

    from autonomous.evolution.update_set import UpdateSetFacade

    @dataclass
    class Svc:
        depends_on: list[str] = field(default_factory=list)
        version: str = "1.0.0"
        traffic: object | None = "front"

    services = {"nexus": Svc(), "robot": Svc(["nexus"])}
    monkeypatch.setenv("COLUMNS", "200")
    ctx = make_context(tmp_path)
    ctx.subsystems["evolution"] = EvolutionFacade(ctx.store, ctx.clock)
    ctx.subsystems["update_sets"] = UpdateSetFacade(ctx.store, ctx.clock, lambda: services,
                                                    set)
    try:
        with TestClient(create_app(ctx)) as tc:
            class Client:
                def __init__(self, args: Any) -> None:
                    self.base = "http://testserver"

                def request(self, method: str, path: str, **kw: Any) -> Any:
                    headers = kw.pop("headers", {})
                    headers["Authorization"] = "Bearer test-token"
                    return tc.request(method, path, headers=headers, **kw)

            monkeypatch.setattr(cmd_rollout, "ApiClient", Client)
            assert dispatch(["rollout", "set", "robot"]) == 2
            assert "SERVICE=VERSION" in capsys.readouterr().out
            assert dispatch(["rollout", "set", "robot=2.0", "nexus=2.0", "--json"]) == 0
            out = json.loads(capsys.readouterr().out)
            assert [m["service"] for m in out["members"]] == ["nexus", "robot"]
            assert dispatch(["rollout", "set", "robot=3.0"]) == 1
            assert "open update set" in capsys.readouterr().err
            ctx.subsystems["update_sets"].sets.set_state(out["id"], "rolled_back",
                                                         "robot failed", 1.0)
            sets = ctx.subsystems["update_sets"].sets
            # the controller's progress, between two refreshes of the live view
            monkeypatch.setattr(cmd_rollout.time, "sleep", lambda s: sets.set_state(
                2, "rolled_back", "member 0 (robot 3.0) rolled back: CANARY: errors", 3.0,
                failed_member="robot"))
            # governed: the set's start waits for a human; the live view names the approval
            gate = ctx.approvals.request(
                controller="evolution_sets", resource="UpdateSet/2", action_kind="update",
                action={"reason": "start member 0 (robot)"}, action_hash="h", generation=1,
                mode="governed", ttl=600)
            assert dispatch(["rollout", "set", "robot=3.0", "--watch", "1"]) == 1
            shown = capsys.readouterr().out
            assert "rolled_back" in shown and "(failed)" in shown
            assert f"awaiting approval {gate['id']}: atlas-autonomous approvals approve " \
                f"{gate['id']}" in shown
    finally:
        ctx.store.close()
