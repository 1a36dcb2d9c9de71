"""Rollback that sticks for data, end to end in the evolution controller: a proposed update
of a Service behind the gateway passes its checks (the snapshot of the data it may touch is
taken first), the new version migrates that data at start, the judge rolls it back for its
slower answers (the sandbox passes it: it answers, only slowly), and once its candidate is
retired the data file is back byte for byte, the Service's owner is asked to restart it, and
the proposal ends rolled back (never proposed again). Real processes (the sample stack's ``--state-file`` migration and ``--variant``), a
real store, the real backup engine; time from a fake clock."""

from __future__ import annotations

import asyncio

import subprocess
import sys
from pathlib import Path

import httpx

from autonomous.core.clock import FakeClock
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.store import RolloutStore
from autonomous.intents import IntentStore
from autonomous.testing import free_port, make_context, wait_for
from controllers.evolution import EvolutionController
from controllers.manager import ControllerManager
from tests.conftest import make_tree, service_yaml, update_source_yaml


def _baseline(port: int, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """The Service's own 1.0.0 process (what the services controller would run)."""
    with open(log, "ab") as out:
        p = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name", "echo",
                              "--port", str(port), "--service-version", "1.0.0",
                              "--state-file", str(state)], stdout=out, stderr=out)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1,
                                   trust_env=False).status_code == 200,
                 "the 1.0.0 process ready", 20, errors=(httpx.HTTPError,))
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p


async def test_a_rolled_back_update_puts_its_data_back_and_asks_for_a_restart(
        tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "root"
    state = root / "state.txt"
    text = service_yaml("echo", port, extra_args=("--service-version", "1.0.0")) \
        + f"  traffic: {{port: {free_port()}}}\n"
    make_tree(root, {"echo": text, "src": update_source_yaml(
        port, {"snapshot_paths": ["state.txt"], "keep_snapshots": 2},
        ("--variant", "slow", "--state-file", str(state)))})
    pol = root / "policies" / "evolution.yaml"  # rounds back to back: this test is about data
    pol.write_text(pol.read_text().replace("min_round_interval_seconds: 1.0",
                                           "min_round_interval_seconds: 0"))
    (root / "releases").mkdir()
    (root / "releases" / "echo-1.1.0.tar.gz").write_text("x")
    base = _baseline(port, state, tmp_path / "baseline.log")
    before = state.read_bytes()
    assert before == b"schema=1.0.0\n"
    clock = FakeClock()
    ctx = make_context(tmp_path, root=root, clock=clock)
    ctx.governance.set_mode("growth", actor="test")  # growth: updates are applied
    facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
    evo = EvolutionController(ctx)
    m = ControllerManager(ctx, [evo])
    rollouts = RolloutStore(ctx.store)
    try:
        await evo.start()
        (item,) = facade.scan(None)["results"]
        pid = item["proposal"]["id"]
        touched = False
        for _ in range(300):
            await m.reconcile(evo)
            # the checks run in the background: the next reconcile concludes them
            await asyncio.gather(*evo.jobs.tasks.values(), return_exceptions=True)
            latest = rollouts.latest("echo", "1.1.0")
            if latest is not None and not touched and "echo" in evo.candidates:
                # the 1.1.0 candidate migrated the data at start (the sandbox only its copy)
                touched = state.read_bytes() == b"schema=1.1.0\n"
            p = facade.proposals.get(pid)
            events = [e["action"] for e in rollouts.history()]
            if p is not None and p.state == "rolled_back" and "retire" in events:
                break
            clock.advance(1)
        p = facade.proposals.get(pid)
        assert p is not None and p.state == "rolled_back", (p, rollouts.history()[:3])
        assert touched, "the candidate never migrated the data file"
        latest = rollouts.latest("echo", "1.1.0")
        assert latest is not None and latest[1].status == "rolled_back"
        assert state.read_bytes() == before  # byte for byte, after the candidate stopped
        retire = next(e for e in rollouts.history() if e["action"] == "retire")
        restore = retire["evidence"]["data_restore"]
        assert restore["restored"] == [str(state)], restore
        (intent,) = IntentStore(ctx.store, ctx.clock).active("Service/echo")
        assert intent.kind == "restart_requested" and intent.id == restore["restart_intent"]
        assert ("echo", "1.1.0") in rollouts.quarantined()
        assert facade.scan(None)["results"][0]["proposal"] is None  # never proposed again
    finally:
        await evo.stop()
        base.kill()
        base.wait()
        ctx.store.close()
