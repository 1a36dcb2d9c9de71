"""The operator SIGKILLed while a proposal's checks run in the background (issue 11.5).

End to end, a real operator: a found update of the sample ``echo`` is vetted; its regression
suite (a process group: the suite and a helper it started) runs until the test opens its gate.
The operator is SIGKILLed mid-suite: the suite's leader dies with it (PDEATHSIG), its helper
is left behind. Started again on the same data dir, the operator finds the job on record
(``evolution_vetting``), stops what the dead job left (by process group and start time) and
runs the checks again (attempt 2, phase VETTING in ``GET /api/evolution/status``); once the
gate opens the proposal is applied. The database passes ``PRAGMA integrity_check`` after the
kill, and nothing the checks started outlives the operator.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from autonomous.testing import free_port, wait_for
from tests.autonomous.crash_harness import _Operator
from tests.autonomous.crash_rollout import integrity
from tests.conftest import make_tree, service_yaml, update_source_yaml


# the suite: starts a helper (its own child, in its process group, not tied to the operator),
# then waits for its gate file (polling a real condition) and passes
SUITE = ("import pathlib, subprocess, sys, time\n"
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)',"
         " sys.argv[2] + '-child'],"
         " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "gate = pathlib.Path(sys.argv[1])\n"
         "while not gate.exists(): time.sleep(0.05)\n")


def _marked(marker: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in (p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


def _vetting(op: _Operator) -> list[dict[str, Any]]:
    r = op.api.get("/api/evolution/status")
    return list(r.json()["vetting"]) if r.status_code == 200 else []


def _operator(tmp_path: Path, checks: dict[str, Any]) -> _Operator:
    port = free_port()
    root = make_tree(tmp_path / "root", {
        "echo": service_yaml("echo", port, core=False,
                             extra_args=("--service-version", "1.0.0")),
        "src": update_source_yaml(port, checks)})
    (root / "releases").mkdir()
    (root / "releases" / "echo-1.1.0.tar.gz").write_text("x")
    return _Operator(root, tmp_path / "data")


def _propose(op: _Operator) -> None:
    """Start the operator in growth mode and let it find echo 1.1.0 (its checks start)."""
    op.start(60)
    r = op.api.put("/api/governance/mode", json={"mode": "growth", "reason": "updates"})
    assert r.status_code < 300, r.text
    r = op.api.post("/api/evolution/scan", json={})
    assert r.status_code == 200, r.text
    op.api.post("/api/reconcile/evolution/trigger")


def _sandboxed() -> list[int]:
    """The sandboxed echo 1.1.0 candidates running (the live echo runs 1.0.0)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            argv = p.info["cmdline"] or []
            if "autonomous.sample_stack" in argv and "echo" in argv and "1.1.0" in argv \
                    and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_operator_killed_in_the_sandbox_step_leaves_no_sandboxed_candidate(tmp_path: Path
                                                                           ) -> None:
    # the sandboxed candidate never answers its ready path: the sandbox step lasts
    op = _operator(tmp_path, {"ready_path": "/never-ready", "ready_timeout_seconds": 600})
    try:
        _propose(op)
        wait_for(lambda: [v["step"] for v in _vetting(op)] == ["sandbox"]
                 and len(_sandboxed()) == 1, "the sandboxed candidate running", 60)
        (first,) = _sandboxed()
        op.kill()
        assert integrity(op.data) == "ok"
        wait_for(lambda: _sandboxed() == [], "the sandboxed candidate to die with the operator",
                 10)  # PDEATHSIG: no orphan even before a restart
        op.start(60)
        op.api.post("/api/reconcile/evolution/trigger")
        wait_for(lambda: [(v["attempt"], v["step"]) for v in _vetting(op)] == [(2, "sandbox")]
                 and len(_sandboxed()) == 1, "the checks resumed (attempt 2)", 60)
        assert _sandboxed() != [first]
    finally:
        op.stop()
    wait_for(lambda: _sandboxed() == [], "no sandboxed candidate outlives the operator", 30)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_operator_killed_mid_vetting_stops_what_it_left_and_vets_again(tmp_path: Path
                                                                       ) -> None:
    gate, marker = tmp_path / "gate", f"atlas-vet-{uuid.uuid4().hex}"
    child = f"{marker}-child"  # the helper's argv; the suite's has ``marker``
    op = _operator(tmp_path, {"test_command": ["{python}", "-c", SUITE, str(gate), marker],
                              "test_timeout_seconds": 600})
    try:
        _propose(op)
        wait_for(lambda: [v["step"] for v in _vetting(op)] == ["regression_tests"]
                 and len(_marked(marker)) == len(_marked(child)) == 1,
                 "the suite and its helper running", 60)
        (first,) = _vetting(op)
        assert first["phase"] == "VETTING" and first["attempt"] == 1
        (helper,) = _marked(child)
        op.kill()
        assert integrity(op.data) == "ok"
        assert psutil.pid_exists(helper)  # left behind by the dead operator's job

        op.start(60)
        op.api.post("/api/reconcile/evolution/trigger")
        wait_for(lambda: not psutil.pid_exists(helper)
                 or psutil.Process(helper).status() == psutil.STATUS_ZOMBIE,
                 "the restarted operator to stop the dead job's helper", 60,
                 errors=(psutil.Error,))
        wait_for(lambda: [(v["attempt"], v["step"]) for v in _vetting(op)]
                 == [(2, "regression_tests")] and len(_marked(child)) == 1,
                 "the checks running again (attempt 2)", 60)
        (p,) = op.api.get("/api/evolution/proposals").json()
        assert p["state"] == "vetting" and f"left processes stopped: [{helper}]" in p["reason"]
        gate.write_text("open")
        op.api.post("/api/reconcile/evolution/trigger")

        def applied() -> bool:
            rows = op.api.get("/api/evolution/proposals").json()
            return [p["state"] for p in rows] == ["applied"]
        wait_for(applied, "the proposal applied after the checks passed", 90)
        (p,) = op.api.get("/api/evolution/proposals").json()
        assert "regression_tests ok" in p["reason"] and "sandbox ok" in p["reason"]
        assert _vetting(op) == []
        wait_for(lambda: _marked(child) == [] and _marked(marker) == [],
                 "the suite's helper to end with the suite", 10)
    finally:
        op.stop()
    wait_for(lambda: _marked(child) == [] and _marked(marker) == [],
             "nothing the checks started survives", 30)
