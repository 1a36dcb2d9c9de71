"""Scan and update: found versions become proposals (POST /api/evolution/scan, /update, token),
applied by the evolution controller through the governance gate — growth patches the
Service's YAML file, governed asks for an approval, emergency_stop records only — a Service
behind the gateway gets a staged rollout instead; quarantined versions are never proposed."""

from __future__ import annotations

import asyncio

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from rich.console import Console

from autonomous.api.app import create_app
from autonomous.cli.cmd_rollout import _table
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.proposals import (PatchConflict, ProposalRow, patch_service,
                                             proposal_of, rollout_name)
from autonomous.evolution.staged_rollout import RolloutState
from autonomous.testing import free_port, make_context
from controllers.evolution import EvolutionController
from controllers.evolution_jobs import JobObserved
from controllers.evolution_proposals import ProposalObserved, plan_proposal
from controllers.manager import ControllerManager
from tests.conftest import make_tree, service_yaml

AUTH = {"Authorization": "Bearer test-token"}

SOURCE = """apiVersion: atlas.autonomous/v1
kind: UpdateSource
metadata:
  name: {svc}-releases
spec:
  service: {svc}
  sources:
    - {{kind: release_dir, path: releases, name: {svc}}}
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "{svc}", "--port",
            "{port}", "--service-version", "{{version}}"]
"""


def _tree(tmp_path: Path, traffic: bool = False) -> tuple[Path, int]:
    port = free_port()
    text = service_yaml("echo", port, extra_args=("--service-version", "1.0.0"))
    if traffic:
        text += f"  traffic: {{port: {free_port()}}}\n"
    root = make_tree(tmp_path / "root", {"echo": text,
                                         "src": SOURCE.format(svc="echo", port=port)})
    rel = root / "releases"
    rel.mkdir()
    for v in ("0.9.0", "1.0.0", "1.1.0", "1.2.0rc1", "not-a-version"):
        (rel / f"echo-{v}.tar.gz").write_text("x")
    return root, port


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, EvolutionFacade, Any]]:
    root, _ = _tree(tmp_path)
    ctx = make_context(tmp_path, root=root)
    facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
    ctx.subsystems["evolution"] = facade
    with TestClient(create_app(ctx)) as c:
        yield c, facade, ctx
    ctx.store.close()


def test_scan_proposes_the_newest_final_version_once(api: tuple[TestClient, Any, Any]) -> None:
    c, facade, _ = api
    assert c.post("/api/evolution/scan", json={}).status_code == 401
    r = c.post("/api/evolution/scan", json={}, headers=AUTH)
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["found"] == "1.1.0" and item["new"] and item["error"] is None  # rc skipped
    prop = item["proposal"]
    assert prop["state"] == "proposed" and prop["current"] == "1.0.0"
    assert prop["command"][-1] == "1.1.0" and prop["origin"].endswith("echo-1.1.0.tar.gz")
    again = c.post("/api/evolution/scan", json={"service": "echo"}, headers=AUTH).json()
    assert again["results"][0]["new"] is False
    assert again["results"][0]["proposal"]["id"] == prop["id"]
    assert c.post("/api/evolution/scan", json={"service": "nope"},
                  headers=AUTH).status_code == 404
    listed = c.get("/api/evolution/proposals").json()
    assert [p["id"] for p in listed] == [prop["id"]]


def test_quarantined_versions_are_never_proposed(api: tuple[TestClient, Any, Any]) -> None:
    c, facade, ctx = api
    rid = facade.rollouts.create(RolloutState("echo", "1.0.0", "1.1.0", 0, 0.0), 0.0)
    facade.rollouts.transition(rid, RolloutState("echo", "1.0.0", "1.1.0", 0, 0.0,
                                                 "rolled_back", "slow"), "rollback", "slow",
                               1.0)
    (item,) = c.post("/api/evolution/scan", json={}, headers=AUTH).json()["results"]
    assert item["found"] is None  # 1.1.0 quarantined, 1.2.0rc1 a pre-release: none newer
    assert item["proposal"] is None
    r = c.post("/api/evolution/update", json={"service": "echo", "version": "1.1.0"},
               headers=AUTH)
    assert r.status_code == 409 and "quarantined" in r.json()["detail"]


def test_update_route_validates(api: tuple[TestClient, Any, Any]) -> None:
    c, _, ctx = api
    body = {"service": "echo", "version": "2.0.0"}
    assert c.post("/api/evolution/update", json=body).status_code == 401
    assert c.post("/api/evolution/update", json={"service": "nope", "version": "2"},
                  headers=AUTH).status_code == 404
    same = c.post("/api/evolution/update", json={"service": "echo", "version": "1.0.0"},
                  headers=AUTH)
    assert same.status_code == 409 and "already declares" in same.json()["detail"]
    assert c.post("/api/evolution/update", json={"service": "echo", "version": "2",
                                                 "command": "rm -rf /"},
                  headers=AUTH).status_code == 422
    woken: list[str] = []
    ctx.triggers["evolution"] = lambda: woken.append("evolution")
    assert woken == []  # a refused request wakes nobody
    ok = c.post("/api/evolution/update", json=body, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["proposal"]["origin"] == "api (api-token)"
    assert woken == ["evolution"]  # taken up now, not at the controller's next interval


async def _propose_and_reconcile(tmp_path: Path, mode: str, traffic: bool = False
                                 ) -> dict[str, Any]:
    root, port = _tree(tmp_path, traffic)
    ctx = make_context(tmp_path, root=root)
    ctx.governance.set_mode(mode, actor="test")
    facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
    evo = EvolutionController(ctx)
    m = ControllerManager(ctx, [evo])
    try:
        (item,) = facade.scan(None)["results"]
        outcomes = [o.action.as_dict() | {"ok": o.ok, "message": o.message}
                    for o in await m.reconcile(evo)]
        while facade.proposals.get(item["proposal"]["id"]).state == "vetting":
            # its checks run in the background; the next reconcile concludes them
            await asyncio.gather(*evo.jobs.tasks.values(), return_exceptions=True)
            outcomes += [o.action.as_dict() | {"ok": o.ok, "message": o.message}
                         for o in await m.reconcile(evo)]
        svc_file = root / "desired_state" / "echo.yaml"
        ctx.subsystems["evolution"] = facade
        with TestClient(create_app(ctx)) as c:  # what `rollout status` reads
            status = c.get("/api/evolution/status").json()
        return {"status": status, "outcomes": outcomes,
                "proposal": facade.proposals.get(item["proposal"]["id"]),
                "spec": yaml.safe_load(svc_file.read_text())["spec"], "port": port,
                "approvals": ctx.approvals.list("pending"),
                "rollout_specs": evo.desired()[0] if evo.desired() else {}}
    finally:
        await evo.stop()
        ctx.store.close()


async def test_growth_patches_the_service_file(tmp_path: Path) -> None:
    seen = await _propose_and_reconcile(tmp_path, "growth")
    assert seen["proposal"].state == "applied", seen["outcomes"]
    assert seen["spec"]["version"] == "1.1.0"
    assert seen["spec"]["command"][-2:] == ["--service-version", "1.1.0"]
    assert seen["spec"]["command"][6] == str(seen["port"])  # the rest byte for byte


async def test_governed_asks_for_approval_and_leaves_the_file(tmp_path: Path) -> None:
    seen = await _propose_and_reconcile(tmp_path, "governed")
    assert seen["proposal"].state == "proposed"
    assert seen["spec"]["version"] == "1.0.0"
    assert [a["resource"] for a in seen["approvals"]] == ["Service/echo"]
    (gate,) = seen["status"]["awaiting_approval"]  # the status names what holds the update
    assert gate["id"] == seen["approvals"][0]["id"] and gate["action"] == "update"
    assert gate["resource"] == "Service/echo" and "update echo 1.0.0 → 1.1.0" in gate["reason"]
    console = Console(record=True, width=200)
    console.print(_table(seen["status"]))
    assert f"atlas-autonomous approvals approve {gate['id']}" in console.export_text()


async def test_emergency_stop_records_only(tmp_path: Path) -> None:
    seen = await _propose_and_reconcile(tmp_path, "emergency_stop")
    assert seen["proposal"].state == "proposed" and seen["spec"]["version"] == "1.0.0"
    assert seen["approvals"] == []
    (o,) = seen["outcomes"]
    assert o["kind"] == "update" and "dry-run" in o["message"]  # decided, recorded, not done


async def test_a_service_behind_the_gateway_gets_a_staged_rollout(tmp_path: Path) -> None:
    seen = await _propose_and_reconcile(tmp_path, "growth", traffic=True)
    assert seen["proposal"].state == "rolling_out"
    assert seen["spec"]["version"] == "1.0.0"  # patched only when the rollout commits
    (spec,) = seen["rollout_specs"].values()
    assert (spec.from_version, spec.to_version) == ("1.0.0", "1.1.0")
    assert "{port}" in spec.command and str(seen["port"]) not in spec.command


def test_patch_is_all_or_nothing(tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    text = 'spec:\n  version: "1"  # pinned\n  command: [a, b]\n'
    f.write_text(text)
    with pytest.raises(PatchConflict, match="edit the file by hand"):
        patch_service(tmp_path, "svc.yaml", "1", "2", ["a", "b"], ["a", "b", "c"], "m")
    assert f.read_text() == text
    with pytest.raises(PatchConflict, match="in force"):
        patch_service(tmp_path, "svc.yaml", "1", "2", ["x", "b"], ["y", "b"], "m")
    assert f.read_text() == text
    assert patch_service(tmp_path, "svc.yaml", "1", "2", ["a", "b"], ["a", "c"], "m") is None
    assert f.read_text() == "spec:\n  version: '2'  # pinned\n  command: [a, c]\n"


def test_interrupted_checks_are_run_again_without_asking_again() -> None:
    """The proposal was let through already (governed: approved); checks cut short by an
    operator restart run again as a retry, which governed mode does not gate."""
    row = ProposalRow(1, "echo", "1.0.0", "1.1.0", "scan", None, "vetting", "", 0.0, 0.0)
    lost = JobObserved("lost", "regression_tests", "", 1, 0.0)
    (again,) = plan_proposal(ProposalObserved(row, True, "1.0.0", False, False, None, lost))
    assert (again.kind, again.params["op"]) == ("retry", "revet")
    assert "at regression_tests (attempt 1)" in again.reason


def test_governed_asks_once_per_proposal_not_once_per_step() -> None:
    """Letting a proposal through is the decision (``update``), unless its update set was
    let through already; its checks' conclusion and its closing carry it out (``proceed``)."""
    row = ProposalRow(1, "echo", "1.0.0", "1.1.0", "scan", None, "proposed", "", 0.0, 0.0)
    obs = ProposalObserved(row, True, "1.0.0", False, False, None)
    (propose,) = plan_proposal(obs)
    assert (propose.kind, propose.params["op"]) == ("update", "propose")
    (member,) = plan_proposal(replace(obs, in_set=True))
    assert (member.kind, member.params["op"]) == ("proceed", "propose")
    for job in (JobObserved("done", "passed", "3 checks passed", 1, 0.0, True),
                JobObserved("done", "failed", "regression_tests failed", 1, 0.0, False)):
        vetting = replace(obs, row=replace(row, state="vetting"), job=job)
        (vetted,) = plan_proposal(vetting)
        assert (vetted.kind, vetted.params["op"]) == ("proceed", "vetted")
    for ended in ("committed", "rolled_back"):
        (close,) = plan_proposal(replace(obs, row=replace(row, state="rolling_out"),
                                         declared_version="1.1.0", rollout_status=ended))
        assert (close.kind, close.params["op"]) == ("proceed", "close")
    (gone,) = plan_proposal(replace(obs, declared=False))
    assert (gone.kind, gone.params["to"]) == ("proceed", "failed")


def test_a_proposals_rollout_name_names_its_proposal() -> None:
    assert proposal_of(rollout_name(7)) == 7
    assert proposal_of("nexus-2") is None  # a Rollout declared in the desired state
    assert proposal_of("proposal-") is None and proposal_of("proposal-x1") is None
