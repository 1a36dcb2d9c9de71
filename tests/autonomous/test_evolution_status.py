"""The evolution controller's report: each Rollout on the status board with its phase by name,
weight, the judge's verdict and the decision taken from it (a holding rollout says why),
AwaitingApproval naming the approval, and the row gone once the Rollout is no longer
observed; ``GET /api/evolution/status`` and ``rollout status`` show the same."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console

from autonomous.api.app import create_app
from autonomous.cli.cmd_rollout import _table
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.evolution.store import RolloutStore
from autonomous.testing import make_context
from controllers.base import Action, Outcome
from controllers.evolution_status import details, report_rollouts
from tests.autonomous.test_evolution_controller import POLICY, obs

SAME = [1.0 + (i % 7) * 0.01 for i in range(40)]


def test_details_say_phase_weight_verdict_and_why_it_holds() -> None:
    running = RolloutState("nexus", "1.0.0", "2.0.0", 0, 100.0)
    d = details(obs(running, base=SAME, cand=SAME, now=102.0), POLICY)
    assert (d["phase"], d["weight"], d["device_version"]) == ("CANARY", 10, "1.0.0")
    assert d["baseline_n"] == 40 and d["candidate_n"] == 40
    assert d["decision"] == "CANARY: baking 2/5s" and d["phase_elapsed_seconds"] == 2.0
    few = details(obs(running, base=SAME[:3], cand=SAME[:3], now=150.0), POLICY)
    assert few["verdict"] == "insufficient" and few["decision"] == \
        "CANARY: not enough samples: baseline 3, candidate 3 (floor 5)", few
    assert details(obs(running, running=False), POLICY)["decision"] == \
        "CANARY: candidate 2.0.0 not running"
    aborted = replace(obs(running, base=SAME, cand=SAME, now=102.0), abort="robot failed")
    assert details(aborted, POLICY)["decision"] == \
        "CANARY: rolling back for its update set: robot failed"
    done = details(obs(RolloutState("nexus", "1.0.0", "2.0.0", 1, 0.0, "committed",
                                    "committed after FULL watch")), POLICY)
    assert (done["phase"], done["weight"], done["decision"]) == \
        ("FULL", 100, "committed after FULL watch")
    assert details(obs(None, quarantined=True), POLICY)["decision"] == \
        "2.0.0 is quarantined (rolled back earlier)"
    assert details(obs(None), POLICY)["decision"] == "not started"


def test_report_writes_conditions_names_the_approval_and_drops_old_rows(
        tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    try:
        rid = RolloutStore(ctx.store).create(RolloutState("nexus", "1.0.0", "2.0.0", 0,
                                                          ctx.clock.now()), ctx.clock.now())
        state = RolloutStore(ctx.store).running()[rid]
        o = obs(state, base=SAME[:3], cand=SAME[:3], now=ctx.clock.now() + 5)
        o = replace(o, rollout_id=rid)
        gate = Outcome(Action("update", "Rollout/nexus-2", "advance"), True,
                       "awaiting approval abc123", details={"approval": "abc123",
                                                            "pending": True})
        report_rollouts(ctx, [o], POLICY, [gate])
        (row,) = ctx.status.resources_of("evolution", "Rollout")
        assert (row["sync"], row["health"]) == ("OutOfSync", "Progressing")
        cond = {c["type"]: c for c in row["conditions"]}
        assert cond["Progressing"]["status"] == "True"
        assert cond["Progressing"]["reason"] == "CANARY"
        assert cond["AwaitingApproval"]["status"] == "True"
        assert cond["AwaitingApproval"]["message"] == "atlas-autonomous approvals approve abc123"
        assert cond["RolledBack"]["status"] == "False"

        ctx.subsystems["evolution"] = EvolutionFacade(ctx.store, ctx.clock)
        with TestClient(create_app(ctx)) as c:
            (live,) = c.get("/api/evolution/status").json()["rollouts"]
        assert live["id"] == rid and live["phase"] == "CANARY" and live["weight"] == 10
        assert live["decision"] == row["details"]["decision"]
        console = Console(record=True, width=200)
        console.print(_table({"rollouts": [live], "quarantined": []}))
        text = console.export_text()
        assert "CANARY 10 %" in text and f"rollout {rid} (nexus): {live['decision']}" in text

        report_rollouts(ctx, [], POLICY, [])  # no longer desired: off the board
        assert ctx.status.resources_of("evolution", "Rollout") == []
    finally:
        ctx.store.close()
