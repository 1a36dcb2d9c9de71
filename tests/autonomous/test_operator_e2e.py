"""The real operator process on free ports in a temp dir, supervising real sample services."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest

from autonomous.testing import wait_for
from tests.conftest import free_port, make_tree, service_yaml

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, operator_factory):
    pa, pb = free_port(), free_port()
    root = make_tree(tmp_path / "root", {
        "alpha": service_yaml("alpha", pa),
        "beta": service_yaml("beta", pb, depends_on=("alpha",), core=False),
    })
    op = operator_factory(root).start()
    op.wait_for(lambda: all(s["health"] == "Healthy" for s in op.services().values())
                and len(op.services()) == 2, what="both services healthy")
    return op


def pid_of(op, name):
    return op.services()[name]["details"]["pid"]


def test_starts_stack_and_restarts_killed_service(stack):
    op = stack
    old = pid_of(op, "alpha")
    os.kill(old, signal.SIGKILL)
    op.wait_for(lambda: pid_of(op, "alpha") not in (None, old)
                and op.services()["alpha"]["health"] == "Healthy", what="alpha restarted")
    assert op.services()["alpha"]["details"]["restarts"] == 1
    with op.client() as c:
        why = c.get("/api/reconcile/services/why").json()
    chain = why["chains"]["Service/alpha"]
    assert [s["type"] for s in chain] == ["observation", "decision", "action", "outcome"]
    assert "exited with code -9" in chain[0]["label"]
    assert chain[-1]["label"].startswith("ok: started pid")
    with op.client() as c:
        restarts = c.get("/api/graph/nodes", params={"type": "action", "q": "restart"}).json()
    assert any("Service/alpha" in n["label"] for n in restarts["nodes"])


def test_hot_reload_valid_invalid_and_command_change(stack):
    op = stack
    with op.client() as c:
        gen = c.get("/api/desired-state").json()["generation"]
    f = op.root / "desired_state" / "alpha.yaml"
    text = f.read_text()
    # same content → no new generation
    f.write_text(text)
    # invalid edit → rejected whole, old generation keeps serving, error visible
    f.write_text(text.replace("restart: {policy: always}", "restart: {policy: sometimes}"))
    state = op.wait_for(lambda: (s := op.client().get("/api/desired-state").json())["error"]
                        and s, what="rejection visible")
    assert state["generation"] == gen
    problem = state["error"]["problems"][0]
    assert problem["file"] == "desired_state/alpha.yaml" and problem["line"] > 0
    assert problem["path"] == "spec.restart.policy"
    old = pid_of(op, "alpha")
    # valid edit that changes the command (adds a feature flag) → new generation + restart
    f.write_text(text.replace('"--port"', '"--features", "turbo", "--port"'))
    state = op.wait_for(lambda: (s := op.client().get("/api/desired-state").json())["generation"]
                        == gen + 1 and s, timeout=5, what="new generation")
    assert state["error"] is None and len(state["hash"]) == 64
    op.wait_for(lambda: pid_of(op, "alpha") not in (None, old)
                and op.services()["alpha"]["sync"] == "Synced", what="restart on command change")
    # beta depends on alpha and kept running
    assert op.services()["beta"]["health"] == "Healthy"


def test_shutdown_leaves_no_orphans_and_mode_persists(tmp_path, stack, operator_factory):
    op = stack
    with op.client() as c:
        r = c.put("/api/governance/mode", json={"mode": "growth", "reason": "e2e"})
        assert r.status_code == 200 and r.json()["previous"] == "governed"
    pids = [pid_of(op, n) for n in ("alpha", "beta")]
    assert op.stop() == 0
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
    again = operator_factory(op.root, op.data_dir).start()
    with again.client() as c:
        mode = c.get("/api/governance/mode").json()
    assert mode["mode"] == "growth"
    assert mode["history"][0]["reason"] == "e2e"


def test_sigkilled_operator_restarts_intact(stack, operator_factory):
    op = stack
    with op.client() as c:
        c.put("/api/governance/mode", json={"mode": "growth"})
        gen = c.get("/api/desired-state").json()["generation"]
        nodes = c.get("/api/graph/nodes").json()["stats"]["nodes"]
    old = [pid_of(op, n) for n in ("alpha", "beta")]
    op.stop(signal.SIGKILL)
    again = operator_factory(op.root, op.data_dir).start()
    with again.client() as c:
        assert c.get("/api/governance/mode").json()["mode"] == "growth"
        ds = c.get("/api/desired-state")
        assert ds.json().get("generation") == gen, ds.text
        assert c.get("/api/graph/nodes").json()["stats"]["nodes"] >= nodes
    again.wait_for(lambda: all(s["health"] == "Healthy" for s in again.services().values()),
                   what="stack back")
    for pid in old:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def _umask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise AssertionError(f"/proc/{pid}/status has no Umask line")


def test_data_files_private_and_services_keep_the_conventional_umask(stack):
    op = stack
    assert op.proc is not None
    assert _umask(op.proc.pid) == 0o077
    assert _umask(pid_of(op, "alpha")) == 0o022
    seen = []
    for path in [op.data_dir, *op.data_dir.rglob("*")]:
        try:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:  # a temp file the operator renamed or removed meanwhile
            continue
        seen.append(path.name)
        assert mode & 0o077 == 0, f"{path}: mode {mode:o} is readable by others"
    assert {"atlas.db", "alpha.log"} <= set(seen), seen


def test_api_auth_and_bad_bodies(stack):
    op = stack
    with op.client(token=False) as c:
        r = c.put("/api/governance/mode", json={"mode": "growth"})
        assert r.status_code == 401 and "bearer token" in r.json()["detail"]
        assert c.get("/api/reconcile/status").status_code == 200
    with op.client() as c:
        r = c.put("/api/governance/mode", json={"mode": "yolo"})
        assert r.status_code == 422 and "mode" in r.json()["detail"]
        r = c.put("/api/governance/mode", content=b"{not json",
                  headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        r = c.put("/api/governance/mode", json={"mode": "growth", "extra": 1})
        assert r.status_code == 422 and "extra" in r.json()["detail"]
        assert c.post("/api/reconcile/nope/trigger").status_code == 404
        assert c.post("/api/reconcile/services/trigger").json()["triggered"] is True
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert 'atlas_resource_health{controller="services",kind="Service",name="alpha",' \
               'status="Healthy"} 1.0' in metrics.text
        assert "/api/reconcile/status" in c.get("/openapi.json").json()["paths"]


def test_metrics_pass_promtools_lint(stack):
    """The whole exposition of a running operator (system, service and the operator's own
    series) passes ``promtool check metrics``: base units, counters named ``_total``, HELP on
    every family."""
    import subprocess

    from autonomous.testing import need_binary

    promtool = need_binary("promtool", "prometheus")
    op = stack
    def exported() -> str | None:
        t = c.get("/metrics").text
        return t if "atlas_service_probe_latency_seconds" in t and "atlas_cpu_ratio" in t \
            else None

    with op.client() as c:
        text = wait_for(exported, "service and system series exported", 30,
                        errors=(httpx.TransportError,))
    out = subprocess.run([promtool, "check", "metrics"], input=str(text), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_cli_status_and_mode(stack):
    import subprocess
    import sys

    op = stack
    env = {**os.environ, "ATLAS_AUTONOMOUS_TOKEN": "test-token"}
    base = [sys.executable, "-m", "controllers.cli"]
    out = subprocess.run(base + ["status", "--root", str(op.root), "--url", op.url],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Service/alpha" in out.stdout and "Healthy" in out.stdout
    assert " s ago" in out.stdout  # when each controller last ran, in a narrow column
    out = subprocess.run(base + ["mode", "growth", "--root", str(op.root), "--url", op.url],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "growth"
    # plan against an edited tree: a version bump → restart, governed by the mode in force
    f = op.root / "desired_state" / "beta.yaml"
    f.write_text(f.read_text().replace('version: "1.0.0"', 'version: "1.1.0"'))
    time.sleep(0)  # the running operator may pick the edit up too; plan reads the files
    out = subprocess.run(base + ["plan", "--root", str(op.root), "--data-dir", str(op.data_dir),
                                 "--json"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    import json

    plan = json.loads(out.stdout)
    assert plan["mode"] == "growth"
    assert any(a.get("resource") == "Service/beta" and a["kind"] == "restart"
               and a["governance"] == "enforce" for a in plan["actions"]) \
        or op.services()["beta"]["details"]["version"] == "1.1.0"


def test_no_endpoint_answers_500(stack):
    """Every route of the running operator, with odd ids and junk query values: 4xx/503,
    never a 500."""
    op = stack
    junk = {"since": "garbage", "until": "-", "limit": "-1", "days": "abc", "metric": "zz",
            "name": "??", "step": "0", "aggregation": "nope", "level": "loud", "mode": "x",
            "state": "weird", "q": "\x00", "range": "1y", "depth": "99"}
    bad = []
    with op.client() as c:
        spec = c.get("/openapi.json").json()
        for path, ops in spec["paths"].items():
            url = path
            for seg in ("{node_id}", "{controller}", "{approval_id}", "{backup_id}",
                        "{trace_id}", "{name}", "{alert_id}", "{silence_id}"):
                url = url.replace(seg, "nope")
            for method in ops:
                for params in ({}, junk):
                    if method == "get":
                        r = c.get(url, params=params)
                    else:
                        r = c.request(method.upper(), url, params=params,
                                      json={"junk": True, "service": "nope"})
                    if r.status_code >= 500 and r.status_code != 503:
                        bad.append(f"{method.upper()} {url} {params and 'junk'} → "
                                   f"{r.status_code} {r.text[:120]}")
    assert bad == []


def test_plan_of_a_proposed_copy_uses_the_running_operators_state(tmp_path, stack):
    """``plan --root proposed/`` without --data-dir plans against the running operator (its
    mode, its running services), not a data dir under the proposed tree."""
    import json
    import shutil
    import subprocess
    import sys

    op = stack
    env = {**os.environ, "ATLAS_AUTONOMOUS_TOKEN": "test-token"}
    with op.client() as c:
        assert c.put("/api/governance/mode", json={"mode": "growth"}).status_code == 200
    proposed = tmp_path / "proposed"
    for d in ("desired_state", "policies", "config"):
        shutil.copytree(op.root / d, proposed / d)
    out = subprocess.run([sys.executable, "-m", "controllers.cli", "plan", "--root",
                          str(proposed), "--url", op.url, "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mode"] == "growth"
    assert not (proposed / ".atlas-data").exists()
    assert not any(a.get("kind") == "start" for a in plan["actions"]), plan["actions"]
    assert all("skipped" in a for a in plan["actions"] if "error" in a)
