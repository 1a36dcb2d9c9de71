"""Update sets on a real operator's controllers: two sample services behind a real Traefik,
robot depending on nexus. A set whose second member errs ends with both on their old
versions (the promoted nexus rolled back, not quarantined; robot quarantined), the reason
naming robot; a good set promotes nexus then robot and commits both. Fake clock (bakes).
The candidates' variant rides in their argv (``env VAR=... python ...``): a longer argv than
the Service's, so the commit's desired-state patch is refused (edit by hand) — the rollouts'
commits are what is checked here."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from autonomous.core.clock import FakeClock
from autonomous.evolution.store import RolloutStore
from autonomous.evolution.update_set import UpdateSetStore
from autonomous.testing import free_port, make_context
from controllers.evolution import EvolutionController
from controllers.evolution_sets import UpdateSetController
from controllers.gateway import GatewayController
from controllers.manager import ControllerManager
from tests.conftest import make_tree, needs_traefik, service_yaml

PHASES = """        phases:
          - {name: CANARY, weight: 10, min_bake_seconds: 5, deadline_seconds: 60}
          - {name: FULL, weight: 100, min_bake_seconds: 5, deadline_seconds: 60}
"""


def _baseline(name: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as logf:
        p = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name", name,
                              "--port", str(port), "--service-version", "1.0.0"],
                             stdout=logf, stderr=logf)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.05)
    p.kill()
    raise TimeoutError(log.read_text()[-2000:])


def _argv(name: str, port: int, variant: str) -> list[str]:
    return ["env", f"ATLAS_SAMPLE_VARIANT={variant}", sys.executable, "-m",
            "autonomous.sample_stack", "--name", name, "--port", str(port),
            "--service-version", "2.0.0"]


async def _run(tmp_path: Path, robot_variant: str) -> dict[str, Any]:
    ports = {"nexus": free_port(), "robot": free_port()}
    procs = [_baseline(n, p, tmp_path / f"{n}.log") for n, p in ports.items()]
    files = {}
    for n, p in ports.items():
        files[n] = service_yaml(n, p, depends_on=("nexus",) if n == "robot" else (),
                                extra_args=("--service-version", "1.0.0")) \
            + f"  traffic: {{port: {free_port()}}}\n"
    root = make_tree(tmp_path / "root", files)
    pol = root / "policies" / "evolution.yaml"
    text = pol.read_text().replace("min_samples: 50", "min_samples: 20")
    start = text.index("        phases:\n")
    end = text.index("        # FULL's bake")
    pol.write_text(text[:start] + PHASES + text[end:])
    clock = FakeClock()
    ctx = make_context(tmp_path, root=root, clock=clock)
    ctx.governance.set_mode("growth", actor="test")
    evo, gw, sets = EvolutionController(ctx), GatewayController(ctx), UpdateSetController(ctx)
    m = ControllerManager(ctx, [gw, evo, sets])
    store, setstore = RolloutStore(ctx.store), UpdateSetStore(ctx.store)
    try:
        for c in (evo, gw, sets):
            await c.start()
        out = ctx.subsystems["update_sets"].create(
            [("robot", "2.0.0", _argv("robot", ports["robot"], robot_variant)),
             ("nexus", "2.0.0", _argv("nexus", ports["nexus"], "good"))], "test")
        sid = out["id"]
        for _ in range(400):
            await m.reconcile(sets)
            await m.reconcile(evo)
            await m.reconcile(gw)
            # a member's checks run in the background: the next reconcile concludes them
            await asyncio.gather(*evo.jobs.tasks.values(), return_exceptions=True)
            if setstore.get(sid).state in ("done", "rolled_back"):
                break
            clock.advance(1)
            if evo.candidates:
                await asyncio.sleep(0.2)  # pacing of paired probe rounds, not a proof
        return {"set": setstore.get(sid), "history": store.history(),
                "quarantined": store.quarantined(),
                "files": {n: yaml.safe_load((root / "desired_state" / f"{n}.yaml").read_text())
                          for n in ports}}
    finally:
        for c in (evo, gw, sets):
            await c.stop()
        for proc in procs:
            proc.kill()
            proc.wait()
        ctx.store.close()


@needs_traefik
@pytest.mark.timeout(240)
async def test_bad_second_member_rolls_back_both(tmp_path: Path) -> None:
    seen = await _run(tmp_path, "errors")
    s = seen["set"]
    assert s.state == "rolled_back", (s, seen["history"][:4])
    assert s.failed_member == "robot" and "robot 2.0.0" in s.reason
    assert [m.service for m in s.members] == ["nexus", "robot"]
    assert [m.status for m in s.members] == ["aborted", "rolled_back"]
    assert seen["quarantined"] == {("robot", "2.0.0")}  # nexus was not at fault
    for n in ("nexus", "robot"):
        assert seen["files"][n]["spec"]["version"] == "1.0.0"
    starts = [e["service"] for e in reversed(seen["history"]) if e["action"] == "start"]
    # robot's candidate fails before or during its rollout (the pre-traffic vet may catch it)
    assert starts[0] == "nexus" and set(starts) <= {"nexus", "robot"}
    assert any(e["service"] == "nexus" and e["action"] == "rollback"
               and "update set" in e["reason"] for e in seen["history"])
    assert not any(e["action"] == "commit" for e in seen["history"])


@needs_traefik
@pytest.mark.timeout(240)
async def test_good_set_promotes_both_in_order(tmp_path: Path) -> None:
    seen = await _run(tmp_path, "good")
    s = seen["set"]
    assert s.state == "done", (s, seen["history"][:4])
    ev = list(reversed(seen["history"]))
    starts = [e["service"] for e in ev if e["action"] == "start"]
    assert starts == ["nexus", "robot"]
    # robot started only after nexus reached FULL; neither committed before both were at FULL
    first_commit = min(i for i, e in enumerate(ev) if e["action"] == "commit")
    robot_full = max(i for i, e in enumerate(ev) if e["service"] == "robot"
                     and e["action"] == "advance")
    assert robot_full < first_commit
    assert sorted(e["service"] for e in ev if e["action"] == "commit") == ["nexus", "robot"]
    assert [m.status for m in s.members] == ["committed", "committed"]
    assert seen["quarantined"] == set()
