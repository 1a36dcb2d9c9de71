"""``atlas-autonomous proposals ...`` / ``learning ...`` against the real app (TestClient in
place of the HTTP hop), on a git checkout: cycle, list, show (diff), approve, export."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.cli import cmd_learning
from autonomous.cli.main import dispatch
from autonomous.core.clock import FakeClock
from autonomous.learning.facade import LearningFacade
from autonomous.learning.learning_orchestrator import LearningOrchestrator
from autonomous.testing import calm_gates, copy_default_tree, make_context
from controllers.learning import LearningController
from controllers.manager import ControllerManager


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("COLUMNS", "200")
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    ctx = make_context(tmp_path, root=root, clock=FakeClock())
    ctx.governance.set_mode("governed", actor="test", reason="test")
    facade = LearningFacade(ctx, LearningOrchestrator(ctx))
    ctx.subsystems["learning"] = facade
    with TestClient(create_app(ctx)) as tc:
        class Client:
            def __init__(self, args: Any) -> None:
                self.base = "http://testserver"

            def request(self, method: str, path: str, **kw: Any) -> Any:
                headers = kw.pop("headers", {})
                headers["Authorization"] = "Bearer test-token"
                return tc.request(method, path, headers=headers, **kw)

        monkeypatch.setattr(cmd_learning, "ApiClient", Client)
        ctl = LearningController(ctx)
        yield ctx, facade, ControllerManager(ctx, [ctl]), ctl
    ctx.store.close()


async def test_cycle_list_show_approve_export(rig: Any, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    ctx, facade, mgr, ctl = rig
    for i in range(12):
        facade.feedback.record_feedback(area="alert:service_latency_high", kind="alert_label",
                                        bad=True, value=510.0 + 10 * i)
    for i in range(8):
        facade.feedback.record_feedback(area="alert:service_latency_high", kind="alert_label",
                                        bad=False, value=650.0 + 10 * i)
    assert dispatch(["learning", "cycle"]) == 0
    out = capsys.readouterr().out
    assert "cycle 1 (governed): 1 proposed prop-" in out
    pid = out.split()[-1]
    await mgr.reconcile(ctl)
    assert dispatch(["proposals"]) == 0
    out = capsys.readouterr().out
    assert pid in out and "awaiting_approval" in out and "500 → 600" in out
    assert dispatch(["proposals", "show", pid]) == 0
    out = capsys.readouterr().out
    assert "+spec.policy.telemetry.alerting.rules.1.value: 600" in out and "evaluation:" in out
    assert dispatch(["proposals", "approve", pid, "--reason", "ok"]) == 0
    assert f"{pid}: awaiting_approval" in capsys.readouterr().out  # applied on the next pass
    await mgr.reconcile(ctl)
    assert dispatch(["proposals", "list", "--state", "baking", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [pid] and rows[0]["apply_commit"]
    assert dispatch(["proposals", "approve", pid]) == 1
    assert "409" in capsys.readouterr().err
    # insights as tables (the finding behind the proposal, its action item), or as JSON
    assert dispatch(["learning", "insights", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert dispatch(["learning", "insights"]) == 0
    out = capsys.readouterr().out
    assert f"cycle {raw['cycle']}, mode governed" in out and "1 baking" in out
    found = [f for f in raw["findings"] if f["area"] == "alert:service_latency_high"]
    assert found and "alert:service_latency_high" in out and "12 / 20" in out
    assert f"action items ({len(raw['action_items'])})" in out
    assert all(i["action"][:40] in out.replace("\n", " ") for i in raw["action_items"])
    target = tmp_path / "learned.json"
    assert dispatch(["learning", "export", str(target)]) == 0
    assert json.loads(target.read_text())["tables"]["learning_proposals"][0]["id"] == pid
