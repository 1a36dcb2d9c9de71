"""Pre-rollout checks in the operator's own update path: the evolution controller applies a
proposal only after the snapshot, the service's regression suite and the sandboxed candidate
passed (the Service's UpdateSource ``checks``); a failure closes the proposal as failed with the
step's output, quarantines the version (never proposed again) and notifies once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import pytest
import yaml

from autonomous.backup.chunks import EngineParams
from autonomous.backup.engine import BackupEngine
from autonomous.evolution.backup_manager import BackupManager
from autonomous.evolution.facade import EvolutionFacade
from autonomous.intents import IntentStore
from autonomous.testing import free_port, make_context, wait_for
from controllers.evolution import EvolutionController
from controllers.evolution_vetting import restore_after_rollback
from controllers.manager import ControllerManager
from tests.conftest import make_tree, service_yaml, update_source_yaml


async def _reconcile(tmp_path: Path, checks: dict[str, Any],
                     after: Callable[[Any, Path, int], Awaitable[Any]] | None = None,
                     extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    port = free_port()
    root = make_tree(tmp_path / "root", {
        "echo": service_yaml("echo", port,
                             extra_args=("--service-version", "1.0.0", *extra_args)),
        "src": update_source_yaml(port, checks, extra_args)})
    (root / "releases").mkdir()
    (root / "releases" / "echo-1.1.0.tar.gz").write_text("x")
    (root / "state.txt").write_text("the data an update may touch\n")
    (root / "data").mkdir()
    (root / "data" / "kept.db").write_bytes(b"\x00\x01 rows of the old schema")
    (root / "data" / "same.txt").write_text("nobody changes this\n")
    ctx = make_context(tmp_path, root=root)
    ctx.governance.set_mode("growth", actor="test")  # applied at once (governed asks first)
    notes = ctx.bus.subscribe("alert.human")
    facade = EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root)
    evo = EvolutionController(ctx)
    m = ControllerManager(ctx, [evo])
    try:
        (item,) = facade.scan(None)["results"]
        outcomes = [(o.ok, o.message) for o in await m.reconcile(evo)]
        for _ in range(3):  # the checks run in the background; then one action concludes
            if facade.proposals.get(item["proposal"]["id"]).state != "vetting":
                break
            await asyncio.gather(*evo.jobs.tasks.values(), return_exceptions=True)
            outcomes += [(o.ok, o.message) for o in await m.reconcile(evo)]
        got = []
        while (ev := notes.get_nowait()) is not None:
            got.append(ev.data)
        rescan = facade.scan(None)["results"][0]
        svc = yaml.safe_load((root / "desired_state" / "echo.yaml").read_text())["spec"]
        extra = await after(ctx, root, item["proposal"]["id"]) if after else None
        return {"after": extra, "outcomes": outcomes, "proposal": facade.proposals.get(item["proposal"]["id"]),
                "notes": got, "rescan": rescan, "version": svc["version"],
                "status": facade.status(), "ctx": ctx, "root": root}
    finally:
        await evo.stop()
        ctx.store.close()


async def test_a_failing_regression_suite_stops_the_update_and_quarantines_it(tmp_path: Path
                                                                              ) -> None:
    seen = await _reconcile(tmp_path, {"test_command": [
        "{python}", "-c", "import sys; print('3 tests failed'); sys.exit(3)"]})
    p = seen["proposal"]
    assert p.state == "failed", seen["outcomes"]
    assert "regression_tests FAILED: exit 3" in p.reason and "3 tests failed" in p.reason
    assert seen["version"] == "1.0.0"  # the desired state was not touched
    assert {"service": "echo", "version": "1.1.0"} in seen["status"]["quarantined"]
    assert seen["rescan"]["proposal"] is None  # quarantined: never proposed again
    assert [n["severity"] for n in seen["notes"]] == ["warning"]
    assert "stopped at regression_tests" in seen["notes"][0]["message"]


async def test_a_candidate_failing_its_api_checks_never_gets_traffic(tmp_path: Path) -> None:
    seen = await _reconcile(tmp_path, {"api_checks": [{"path": "/health", "status": 204}]})
    p = seen["proposal"]
    assert p.state == "failed" and "sandbox FAILED" in p.reason, p.reason
    assert seen["version"] == "1.0.0"


async def test_checks_pass_snapshot_taken_then_the_update_is_applied(tmp_path: Path) -> None:
    seen = await _reconcile(tmp_path, {"snapshot_paths": ["state.txt"], "keep_snapshots": 1,
                                       "test_command": ["{python}", "-c", "pass"]})
    p = seen["proposal"]
    assert p.state == "applied", seen["outcomes"]
    assert "backup ok: snapshot" in p.reason and "sandbox ok" in p.reason
    assert seen["version"] == "1.1.0"
    ctx = seen["ctx"]
    engine = BackupEngine(ctx.data_dir / "backups" / "evolution",
                          EngineParams.from_policy(ctx.policy()["resilience"]["backup"]),
                          root=seen["root"], data_dir=ctx.data_dir)
    (snap,) = BackupManager(engine).list_snapshots("echo")
    out = tmp_path / "restored"
    BackupManager(engine).restore_snapshot(snap["id"], out)
    assert (out / "state.txt").read_bytes() == (seen["root"] / "state.txt").read_bytes()
    assert [n["severity"] for n in seen["notes"]] == ["info"]


@pytest.mark.parametrize("state_arg", ["relative", "absolute"])
async def test_the_sandboxed_candidate_migrates_a_copy_never_the_live_data(
        tmp_path: Path, state_arg: str) -> None:
    live = tmp_path / "root" / "state.txt"
    args = (("--state-file", "state.txt") if state_arg == "relative"
            else (f"--state-file={live}",))
    seen = await _reconcile(tmp_path, {"snapshot_paths": ["state.txt", "data"]},
                            extra_args=args)
    p = seen["proposal"]
    assert p.state == "applied", seen["outcomes"]
    # the candidate ran its migration (rewrote state.txt as schema=1.1.0) in its copy
    assert "sandbox ok" in p.reason and "data copy: 1 file(s) changed" in p.reason, p.reason
    assert live.read_bytes() == b"the data an update may touch\n"  # byte for byte
    assert (seen["root"] / "data" / "kept.db").read_bytes() == b"\x00\x01 rows of the old schema"
    assert not (seen["ctx"].data_dir / "sandboxes" / f"proposal-{p.id}").exists()  # removed


async def test_a_suite_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    marker = f"atlas-vet-{uuid.uuid4().hex}"
    child = f"import time; time.sleep(120)  # {marker}"
    seen = await _reconcile(tmp_path, {"test_timeout_seconds": 1.0, "test_command": [
        "{python}", "-c", "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(120)"]})
    assert seen["proposal"].state == "failed"
    assert "timed out after 1s" in seen["proposal"].reason

    def left() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"])
                if any(marker in a for a in (p.info["cmdline"] or []))]
    wait_for(lambda: left() == [], timeout=10, what="the suite's child to be killed")


async def test_a_rollback_puts_back_exactly_the_data_the_update_touched(tmp_path: Path) -> None:
    async def touch_then_roll_back(ctx: Any, root: Path, pid: int) -> dict[str, Any]:
        before = {p: p.read_bytes() for p in (root / "state.txt", root / "data" / "kept.db",
                                              root / "data" / "same.txt")}
        (root / "state.txt").write_text("migrated by the candidate\n")  # changed
        (root / "data" / "kept.db").unlink()  # deleted
        (root / "data" / "new.log").write_text("written since\n")  # created
        report = await restore_after_rollback(ctx, f"proposal-{pid}", "echo", "judge: 5xx")
        return {"report": report, "before": before,
                "intents": IntentStore(ctx.store, ctx.clock).active("Service/echo")}

    seen = await _reconcile(tmp_path, {"snapshot_paths": ["state.txt", "data"]},
                            touch_then_roll_back)
    after, root = seen["after"], seen["root"]
    rep = after["report"]
    assert sorted(rep["restored"]) == sorted([str(root / "state.txt"),
                                              str(root / "data" / "kept.db")]), rep
    assert rep["unchanged"] == 1 and rep["created_since"] == [str(root / "data" / "new.log")]
    for path, data in after["before"].items():
        assert path.read_bytes() == data  # byte for byte
    assert (root / "data" / "new.log").exists()  # reported, never deleted
    (intent,) = after["intents"]
    assert intent.kind == "restart_requested" and intent.id == rep["restart_intent"]
    assert not (seen["ctx"].data_dir / "restores" / f"evolution-proposal-{seen['proposal'].id}"
                ).exists()  # staging removed


async def test_nothing_to_restore_without_a_snapshot(tmp_path: Path) -> None:
    async def roll_back(ctx: Any, root: Path, pid: int) -> Any:
        return await restore_after_rollback(ctx, f"proposal-{pid}", "echo", "x")

    seen = await _reconcile(tmp_path, {}, roll_back)
    assert seen["after"] is None
