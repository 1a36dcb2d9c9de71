"""Vetting is a background job the evolution controller observes (issue 11.5): a proposal's
long regression suite never blocks the reconcile, so another service's staged rollout advances
meanwhile; the proposal shows phase VETTING with its step until the job ends, and the next
reconcile concludes it. The suite here runs until the test opens its gate (a file): if the
controller awaited the checks inside ``act``, the rollout could never advance and the test
would time out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from autonomous.cli.cmd_rollout import _table
from autonomous.core.clock import FakeClock
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.store import RolloutStore
from autonomous.testing import free_port, make_context, terminate, wait_for
from controllers.evolution import EvolutionController
from controllers.manager import ControllerManager
from tests.conftest import make_tree, service_yaml, update_source_yaml


ROLLOUT = """apiVersion: atlas.autonomous/v1
kind: Rollout
metadata:
  name: nexus-2
spec:
  service: nexus
  from_version: "1.0.0"
  to_version: "2.0.0"
  command: ["{python}", "-m", "autonomous.sample_stack", "--name", "nexus", "--port",
            "{port}", "--service-version", "2.0.0"]
  probes_per_observe: 10
  phases:
    - {name: CANARY, weight: 10, min_bake_seconds: 2, deadline_seconds: 600}
    - {name: FULL, weight: 100, min_bake_seconds: 2, deadline_seconds: 600}
"""

# the suite: waits for its gate file (polling a real condition), then passes
SUITE = ("import pathlib, sys, time\n"
         "gate = pathlib.Path(sys.argv[1])\n"
         "while not gate.exists(): time.sleep(0.05)\n")


@pytest.mark.timeout(180)
async def test_a_long_suite_runs_in_the_background_while_another_rollout_advances(
        tmp_path: Path) -> None:
    echo_port, nexus_port = free_port(), free_port()
    gate = tmp_path / "gate"
    checks = {"test_command": ["{python}", "-c", SUITE, str(gate)]}
    root = make_tree(tmp_path / "root", {
        "echo": service_yaml("echo", echo_port, extra_args=("--service-version", "1.0.0")),
        "nexus": service_yaml("nexus", nexus_port, extra_args=("--service-version", "1.0.0")),
        "src": update_source_yaml(echo_port, checks),
        "rollout": ROLLOUT})
    (root / "releases").mkdir()
    (root / "releases" / "echo-1.1.0.tar.gz").write_text("x")
    pol = root / "policies" / "evolution.yaml"
    pol.write_text(pol.read_text().replace("min_samples: 50", "min_samples: 20")
                   .replace("min_rounds: 10", "min_rounds: 3"))
    base = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name", "nexus",
                             "--port", str(nexus_port), "--service-version", "1.0.0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clock = FakeClock()
    ctx = make_context(tmp_path, root=root, clock=clock)
    ctx.governance.set_mode("growth", actor="test")
    facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
    evo = EvolutionController(ctx)
    m = ControllerManager(ctx, [evo])
    rollouts = RolloutStore(ctx.store)
    try:
        await asyncio.to_thread(wait_for, lambda: _ready(nexus_port), "baseline ready", 30)
        await evo.start()
        (item,) = facade.scan(None)["results"]
        pid = item["proposal"]["id"]
        seen_vetting: list[dict[str, object]] = []
        phases_seen: set[object] = set()  # the controller's report on the board, pass by pass
        for _ in range(300):
            await m.reconcile(evo)
            phases_seen |= {(r["details"].get("phase"), r["details"].get("status"))
                            for r in ctx.status.resources_of("evolution", "Rollout")}
            assert facade.proposals.get(pid).state == "vetting"  # the gate is shut
            latest = rollouts.latest("nexus", "2.0.0")
            if latest is not None and latest[1].status == "committed":
                break
            seen_vetting = facade.status()["vetting"]
            clock.advance(1)
            if "nexus" in evo.candidates:
                await asyncio.sleep(0.2)  # pacing of paired probe rounds, not a proof
        latest = rollouts.latest("nexus", "2.0.0")
        assert latest is not None and latest[1].status == "committed", rollouts.history()[:3]
        assert {("CANARY", "running"), ("FULL", "running")} <= phases_seen, phases_seen
        # the whole rollout of nexus advanced while echo's suite was still running
        assert facade.proposals.get(pid).state == "vetting"
        assert not evo.jobs.tasks[pid].done()
        (v,) = seen_vetting
        assert v["phase"] == "VETTING" and v["step"] == "regression_tests", v
        assert v["service"] == "echo" and v["to_version"] == "1.1.0"
        console = Console(record=True, width=200)  # `atlas-autonomous rollout status` shows it
        console.print(_table({"rollouts": [], "quarantined": [], "vetting": seen_vetting}))
        assert "VETTING: regression_tests" in console.export_text()
        gate.write_text("open")
        await asyncio.wait_for(asyncio.shield(evo.jobs.tasks[pid]), 60)
        await asyncio.sleep(0)  # one loop turn: the task's done callbacks run
        (v,) = facade.status()["vetting"]  # over: the row says so, not "regression_tests"
        assert v["step"] == "passed" and "regression_tests ok" in v["detail"], v
        console = Console(record=True, width=200)
        console.print(_table({"rollouts": [], "quarantined": [], "vetting": [v]}))
        text = console.export_text()
        assert "VETTING: passed" in text and "checks passed" in text, text
        outcomes = await m.reconcile(evo)
        assert [o.message for o in outcomes if o.action.resource == "Service/echo"] == [
            f"proposal {pid}: desired_state/echo.yaml patched"], outcomes
        p = facade.proposals.get(pid)
        assert p.state == "applied" and "regression_tests ok" in p.reason, p.reason
        assert facade.status()["vetting"] == [] and evo.jobs.tasks == {}
    finally:
        await evo.stop()
        terminate(base)
        ctx.store.close()


def _ready(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1,
                         trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
