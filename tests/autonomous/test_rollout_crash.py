"""The operator SIGKILLed mid-rollout resumes safely (issue 11.6, 15.3).

End to end: a real operator runs a staged rollout of the sample ``nexus`` 2.0.0 behind the
real gateway; it is SIGKILLed once the rollout is at CANARY (its candidate recorded and the
gateway serving it at 10 %) and again at BETA (25 %), each time started again on the same data
dir. After each kill: the database passes ``PRAGMA integrity_check``, nothing the operator
started survives it (services, candidate, gateway); after each restart: the rollout resumes
its persisted phase (never an earlier one) with a fresh candidate, and the gateway's written
weights are the persisted phase's again; in the end the rollout commits or rolls back with a
reason. In process: a candidate that did survive (it was not our child) is found by its
identity — pid, create time and command line, or the port it listens on — and stopped, then
the rollout resumes (or, with ``rollout.on_operator_restart: rollback``, rolls back).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from autonomous.core.clock import FakeClock
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.evolution.store import CandidateRecord, RolloutStore
from autonomous.supervisor.processes import expand_argv
from autonomous.testing import free_port, make_context, terminate, wait_for
from controllers.evolution import EvolutionController
from controllers.manager import ControllerManager
from tests.autonomous.crash_harness import _Operator
from tests.autonomous.crash_rollout import (
    PHASES,
    alive,
    candidate_weight,
    expected_weight,
    gateway_backends,
    integrity,
    nexus_yaml,
    prepare_rollout_tree,
    rollout_yaml,
    snapshot,
    versions_running,
)
from tests.conftest import make_tree, needs_traefik


def _gone(pids: list[int]) -> bool:
    def dead(p: int) -> bool:
        try:
            return psutil.Process(p).status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True
    return all(dead(p) for p in pids)


@pytest.mark.e2e
@pytest.mark.slow
@needs_traefik
@pytest.mark.timeout(600)
def test_operator_killed_at_canary_and_at_beta_resumes_the_rollout(tmp_path: Path) -> None:
    root = prepare_rollout_tree(make_tree(tmp_path / "root", {}), free_port(), free_port())
    data = tmp_path / "data"
    op = _Operator(root, data)
    try:
        op.start(60)
        r = op.api.put("/api/governance/mode", json={"mode": "growth", "reason": "rollouts"})
        assert r.status_code < 300, r.text
        (root / "desired_state" / "rollout.yaml").write_text(rollout_yaml())
        for index, (phase, weight) in enumerate(PHASES[:2]):
            assert op.proc is not None
            pid = op.proc.pid

            def at_phase() -> object:
                s = snapshot(data)
                w = candidate_weight(data)
                return (s.status == "running" and s.phase_index == index
                        and s.operator_pid == pid and w is not None and w[0] == weight
                        and alive(s.candidate_pid, s.candidate_ctime)) and s
            wait_for(at_phase, f"{phase}: the candidate served at {weight} %", 180)
            before = snapshot(data)
            children = op.children()
            assert before.candidate_pid in children
            op.kill()
            wait_for(lambda: _gone(children), "every process of the killed operator gone", 15)
            assert integrity(data) == "ok"
            killed = snapshot(data)  # what the restarted operator resumes from
            assert killed.status == "running" and killed.phase_index == index
            op.stop()
            op = _Operator(root, data)
            op.start(60)
            assert op.proc is not None
            new_pid = op.proc.pid

            def resumed() -> object:
                s = snapshot(data)
                w = candidate_weight(data)
                if s.status != "running":
                    return s  # ended meanwhile (committed or rolled back): checked below
                return (s.operator_pid == new_pid and w is not None
                        and w[0] == expected_weight(s)
                        and alive(s.candidate_pid, s.candidate_ctime)) and s
            s = wait_for(resumed, f"the rollout resumed after the kill at {phase}", 120)
            assert isinstance(s, type(killed))
            assert s.rollout_id == killed.rollout_id  # the same rollout, not a new one
            assert s.phase_index is not None and s.phase_index >= index  # never earlier
            assert s.candidate_pid != before.candidate_pid
            assert not alive(before.candidate_pid, before.candidate_ctime)
        end = wait_for(lambda: (s := snapshot(data)).status != "running"
                       and "retire" in s.events and s,
                       "the rollout to commit or roll back, its candidate retired", 240)
        assert isinstance(end, type(killed))
        assert end.status in ("committed", "rolled_back") and end.reason, end
        assert end.candidate_pid is None  # its candidate is no longer on record
        assert end.events[0] == "start" and end.events.count("start") == 1
        assert end.events[-2:] in (("commit", "retire"), ("rollback", "retire"))
        _check_end(op, data, end.status)
        assert integrity(data) == "ok"
    finally:
        op.stop()


def _front_versions(front: int, n: int = 20) -> set[str]:
    """The versions (or other answers) ``n`` requests to the front got."""
    out = set()
    with httpx.Client(timeout=5, trust_env=False) as h:
        for _ in range(n):
            r = h.get(f"http://127.0.0.1:{front}/health")
            out.add(r.json()["version"] if r.status_code == 200 else
                    f"{r.status_code} {r.text[:80]}")
    return out


def _check_end(op: _Operator, data: Path, status: str) -> None:
    """Committed: the old version is retired — its process stopped, the gateway lists only
    the Service's own process, now 2.0.0. Rolled back: the old version serves everything."""
    front = yaml.safe_load((op.root / "desired_state" / "nexus.yaml").read_text())["spec"]
    port = front["port"]
    if status == "committed":
        wait_for(lambda: gateway_backends(data) == {
            "nexus-v2-0-0": [f"http://127.0.0.1:{port}"]}, "only the Service's own process "
            "listed, as 2.0.0", 30)
        wait_for(lambda: set(versions_running(op.children())) == {"2.0.0"},
                 "the 1.0.0 process stopped, the Service runs 2.0.0", 30)
        assert _front_versions(front["traffic"]["port"]) == {"2.0.0"}
    else:
        assert candidate_weight(data) == (0, "nexus-v1-0-0")
        assert _front_versions(front["traffic"]["port"]) == {"1.0.0"}


@pytest.mark.e2e
@pytest.mark.slow
@needs_traefik
@pytest.mark.timeout(300)
def test_before_the_commit_point_a_rollback_switches_back_to_the_running_old_version(
        tmp_path: Path) -> None:
    root = prepare_rollout_tree(make_tree(tmp_path / "root", {}), free_port(), free_port())
    data = tmp_path / "data"
    op = _Operator(root, data)
    try:
        op.start(60)
        r = op.api.put("/api/governance/mode", json={"mode": "growth", "reason": "rollouts"})
        assert r.status_code < 300, r.text
        (root / "desired_state" / "rollout.yaml").write_text(rollout_yaml(full_bake_seconds=600))
        wait_for(lambda: (s := snapshot(data)).status == "running" and s.phase_index == 2
                 and candidate_weight(data) == (100, "nexus-v2-0-0"),
                 "FULL: the candidate serves everything, device paths switched", 180)
        old = versions_running(op.children())["1.0.0"]  # the watch: the old one still runs
        r = op.api.post("/api/evolution/rollback", json={"service": "nexus",
                                                         "reason": "a human saw a problem"})
        assert r.status_code == 200, r.text
        end = wait_for(lambda: (s := snapshot(data)).status == "rolled_back"
                       and "retire" in s.events and s, "the candidate retired", 30)
        assert isinstance(end, type(snapshot(data)))
        assert "a human saw a problem" in end.reason
        wait_for(lambda: candidate_weight(data) == (0, "nexus-v1-0-0"),
                 "the gateway back on 1.0.0", 15)
        assert versions_running(op.children()) == {"1.0.0": old}  # the same process
        _check_end(op, data, "rolled_back")
    finally:
        op.stop()


def _orphan(port: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    """A candidate that outlived its operator: not a child of the controller under test."""
    argv = ["{python}", "-m", "autonomous.sample_stack", "--name", "nexus", "--port",
            str(port), "--service-version", "2.0.0"]
    p = subprocess.Popen(expand_argv(argv), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1,
                               trust_env=False).status_code == 200,
             "the left-over candidate answering", 30, errors=(httpx.HTTPError,))
    return p, argv


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("policy", "by"), [("resume", "pid"), ("resume", "port"),
                                            ("rollback", "pid")])
async def test_a_candidate_left_by_a_killed_operator_is_found_and_stopped(
        tmp_path: Path, policy: str, by: str) -> None:
    base_port, front, port = free_port(), free_port(), free_port()
    root = make_tree(tmp_path / "root", {"nexus": nexus_yaml(base_port, front),
                                         "rollout": rollout_yaml()})
    pol = root / "policies" / "evolution.yaml"
    pol.write_text(pol.read_text().replace("on_operator_restart: resume",
                                           f"on_operator_restart: {policy}"))
    clock = FakeClock()
    ctx = make_context(tmp_path, root=root, clock=clock)
    ctx.governance.set_mode("growth", actor="test")
    store = RolloutStore(ctx.store)
    rid = store.create(RolloutState("nexus", "1.0.0", "2.0.0", 0, clock.now()), clock.now())
    orphan, argv = _orphan(port)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # by port: the pid on record is long gone, the port still answers
    rec_pid = orphan.pid if by == "pid" else dead.pid
    ctime = psutil.Process(orphan.pid).create_time() if by == "pid" else 0.0
    killed_operator = 1  # not this process: the candidate was started by another operator
    store.record_candidate(CandidateRecord(rid, "nexus", "2.0.0", rec_pid, ctime, port,
                                           tuple(argv), killed_operator, time.time()))
    evo = EvolutionController(ctx)
    m = ControllerManager(ctx, [evo])
    try:
        await evo.start()
        first = [o.action for o in await m.reconcile(evo)]
        await asyncio.to_thread(orphan.wait, 10)  # stopped (TimeoutExpired: it was not)
        latest = store.latest("nexus", "2.0.0")
        assert latest is not None
        if policy == "rollback":
            assert [a.kind for a in first] == ["rollback"]
            assert latest[1].status == "rolled_back"
            assert "operator restarted" in latest[1].reason
            assert evo.candidates == {}  # the gateway gets no candidate: 0 %
            again = [o.action for o in await m.reconcile(evo)]
            assert [a.params["op"] for a in again] == ["retire"]  # nothing left to drain
            assert rid not in store.candidates()
            return
        assert [(a.kind, a.params["op"]) for a in first] == [("stop", "orphan")]
        assert [h["action"] for h in store.history()][:1] == ["orphan"]
        second = [o.action for o in await m.reconcile(evo)]
        assert [a.params["op"] for a in second] == ["candidate"]
        rec = store.candidates()[rid]
        assert rec.operator_pid == os.getpid() and rec.pid != orphan.pid
        c = evo.candidates["nexus"]
        assert (c.weight, c.device_version) == (10, "1.0.0")  # CANARY's share again
        assert latest[1].status == "running" and latest[1].phase_index == 0
    finally:
        await evo.stop()
        terminate(orphan)
        ctx.store.close()
