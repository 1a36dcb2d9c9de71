"""EvolutionOrchestratorV2: the flow's pre-rollout steps on real processes — a regression
suite (argv), a sandboxed candidate checked on its own port — then the hand-off to the staged
rollout as a proposal; a failing step stops the flow before anything is proposed."""

from __future__ import annotations

from pathlib import Path

import yaml

from autonomous.evolution.evolution_orchestrator_v2 import EvolutionOrchestratorV2, UpdatePlan
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.regression_tester import ApiCheck, RegressionTester
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.testing import free_port, make_context
from tests.conftest import make_tree, service_yaml

ROOT = Path(__file__).resolve().parents[2]
JUDGE = EvolutionPolicy.model_validate(yaml.safe_load(
    (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"]).judge
CMD = ["{python}", "-m", "autonomous.sample_stack", "--name", "echo", "--port", "{port}",
       "--service-version", "2.0.0"]


async def _flow(tmp_path: Path, plan: UpdatePlan) -> tuple[list, list, list]:
    root = make_tree(tmp_path / "root", {"echo": service_yaml("echo", free_port())})
    ctx = make_context(tmp_path, root=root)
    client = ProbeClient()
    notes = ctx.bus.subscribe("alert.human")
    try:
        facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
        o = EvolutionOrchestratorV2(facade, RegressionTester(client), JUDGE, ctx.bus,
                                    ctx.data_dir / "evolution" / "CHANGELOG.md")
        steps = await o.run_update(plan, "test")
        got = []
        while (ev := notes.get_nowait()) is not None:
            got.append(ev.data)
        return steps, facade.list_proposals(10), got
    finally:
        await client.aclose()
        ctx.store.close()


async def test_checks_pass_then_the_update_is_proposed(tmp_path: Path) -> None:
    plan = UpdatePlan("echo", "2.0.0", CMD, test_command=["{python}", "-c", "pass"],
                      checks=[ApiCheck("/health"), ApiCheck("/nope", 404)])
    steps, proposals, notes = await _flow(tmp_path, plan)
    assert [(s.name, s.ok) for s in steps] == [("backup", True), ("regression_tests", True),
                                               ("sandbox", True), ("staged_rollout", True)]
    assert [(p["version"], p["state"], p["command"]) for p in proposals] == [
        ("2.0.0", "proposed", CMD)]
    assert [n["severity"] for n in notes] == ["info"]


async def test_a_failing_step_stops_before_anything_is_proposed(tmp_path: Path) -> None:
    failing = UpdatePlan("echo", "2.0.0", CMD,
                         test_command=["{python}", "-c", "raise SystemExit(3)"])
    steps, proposals, notes = await _flow(tmp_path / "a", failing)
    assert [(s.name, s.ok) for s in steps] == [("backup", True), ("regression_tests", False)]
    assert "exit 3" in steps[-1].detail and proposals == []
    assert [n["severity"] for n in notes] == ["warning"]
    broken = UpdatePlan("echo", "2.0.0", CMD, checks=[ApiCheck("/health", 204)])
    steps, proposals, _ = await _flow(tmp_path / "b", broken)
    assert [(s.name, s.ok) for s in steps][-1] == ("sandbox", False) and proposals == []
    assert "expected 204" in steps[-1].data["failures"][0]
