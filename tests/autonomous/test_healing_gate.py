"""One gate: every healing step is an Action through the Executor (governance, per-resource
back-off, Stalled, knowledge graph); ``healing.approval_list`` is gone (governance.actions)."""

from __future__ import annotations

from autonomous.resources.loader import load_tree
from autonomous.testing import copy_default_tree
from tests.autonomous.healing_fakes import heal, healing_context, spec

OLD_KEY = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: zz-old}
spec:
  mode: governed
  policy:
    healing:
      approval_list: [ROLLBACK]
"""


def test_old_approval_list_is_a_clear_problem(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    (root / "policies" / "zz_old.yaml").write_text(OLD_KEY)
    result = load_tree(root)
    assert result.tree is None
    [p] = [str(p) for p in result.problems]
    assert p.startswith("policies/zz_old.yaml:8: spec.policy.healing.approval_list: "), p
    assert "folded into governance.actions" in p and "require_approval" in p


def test_governed_strategies_are_gated_by_governance_actions_only(tmp_path):
    ctx, _fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)}, mode="governed")
    from autonomous.self_healing.facade import HealingFacade

    rows = {r["name"]: r["gate"] for r in HealingFacade(orch).strategies()["strategies"]}
    assert rows["RESTART_ALL"] == ctx.governance.action_mode("restart_all") == \
        "require_approval"
    assert rows["RESTART_SERVICE"] == ctx.governance.action_mode("restart") == "enforce"
    assert orch.policy().get("approval_list") is None  # removed key, kept only to explain
    ctx.store.close()


async def test_a_failing_restart_backs_off_in_the_executor_and_the_alert_still_goes(tmp_path):
    ctx, fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    fake.crash_on_start.add("nexus")
    row = await heal(orch, "nexus", strategy="RESTART_SERVICE", message="broken")
    assert [a["strategy"] for a in row["attempts"]][:1] == ["RESTART_SERVICE"]
    assert row["attempts"][0]["ok"] is False and row["state"] == "escalated"
    starts = fake.starts
    row2 = await heal(orch, "nexus", strategy="RESTART_SERVICE", message="again")
    first = row2["attempts"][0]
    # per-resource back-off of the one Executor: not tried again at once, not a new failure
    assert first["strategy"] == "RESTART_SERVICE" and first["gate"] == "backoff"
    assert "backing off" in first["message"] and fake.starts == starts
    assert row2["attempts"][-1]["strategy"] == "ALERT_HUMAN"
    decisions = [n for n in ctx.graph.find(type_="decision", limit=50)
                 if n["attrs"].get("gate") == "enforce"
                 and n["label"] == "restart Service/nexus"]
    assert decisions  # recorded by the Executor, with gate and mode
    ctx.store.close()
