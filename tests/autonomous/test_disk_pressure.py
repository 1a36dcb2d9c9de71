"""Disk pressure is acted on: with the disk threshold lowered in a temp tree (the real disk is
never filled) the finding fires the default ``resource_pressure`` alert and runs retention and
log rotation now; it clears when the threshold is back. A backup that would not fit is
refused before it writes anything (a sparse file: large, and no disk used)."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from autonomous.core.clock import FakeClock
from autonomous.core.errors import Conflict
from autonomous.health_monitor.recommendations import recommendations
from autonomous.backup.chunks import EngineParams
from autonomous.resilience.disaster_recovery import DisasterRecovery
from autonomous.testing import make_context
from controllers.health import HealthController
from controllers.manager import ControllerManager
from controllers.telemetry import TelemetryController


async def _drain() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_disk_pressure_alerts_and_frees_space_now(tmp_path) -> None:
    ctx = make_context(tmp_path, load=False)
    pol = ctx.root / "policies" / "health.yaml"
    original = pol.read_text()
    pol.write_text(original.replace("disk_percent: 90", "disk_percent: 0.001"))
    assert ctx.desired.reload() is not None, ctx.desired.error
    health, tele = HealthController(ctx), TelemetryController(ctx)
    await health.start()
    await tele.start()
    mgr = ControllerManager(ctx, [health, tele])
    try:
        (ctx.data_dir / "logs" / "operator.jsonl").write_text("x" * 1000)
        ctx.clock.advance(11)
        outcomes = await mgr.reconcile(health)
        disk = [o for o in outcomes if o.action.params.get("type") == "threshold_exceeded"
                and o.action.resource.startswith("Metric/disk.percent")]
        assert disk and all(o.ok for o in disk), [o.as_dict() for o in outcomes]
        (free,) = [o for o in outcomes if o.action.kind == "housekeeping"]
        assert free.ok and set(free.details["jobs"]) == {"telemetry.housekeeping",
                                                         "operator.retention"}
        assert free.details["rotated"] and (ctx.data_dir / "logs" / "operator.jsonl.1").exists()
        # the jobs were made due now: the scheduler runs them on its next look
        assert {"telemetry.housekeeping", "operator.retention"} <= set(
            await ctx.jobs.run_due(ctx.clock))
        await _drain()
        await mgr.reconcile(tele)
        hub = ctx.subsystems["telemetry"]

        def pressure() -> list:
            return [a for a in hub.alerts.active_alerts() if a["rule"] == "resource_pressure"
                    and a["labels"]["metric"].startswith("disk.percent")]

        assert [a["state"] for a in pressure()] == ["pending"]  # held 60 s (a spike is not)
        ctx.clock.advance(61)
        await mgr.reconcile(tele)
        assert [a["state"] for a in pressure()] == ["firing"]
        # threshold back: the finding clears, the alert resolves
        pol.write_text(original)
        assert ctx.desired.reload() is not None
        ctx.clock.advance(11)
        cleared = await mgr.reconcile(health)
        assert any(o.action.params.get("op") == "clear" for o in cleared)
        await _drain()
        await mgr.reconcile(tele)
        assert pressure() == []
    finally:
        await tele.stop()
        await health.stop()
        ctx.store.close()


def test_already_above_is_said_so() -> None:
    problems = [{"metric": "disk.percent{mount=/}", "value": 35.0, "threshold": 20.0,
                 "resource": "disk"}]
    pred = [{"metric": "disk.percent{mount=/}", "threshold": 20.0, "level": 21.0,
             "eta_seconds": 0.0, "slope_per_hour": 1.0}]
    texts = [r["text"] for r in recommendations(problems, {}, pred, [], [], None, {},
                                                  now=0.0)]
    assert all("already above" in t for t in texts), texts
    assert not any("in ~0 s" in t for t in texts)


def test_backup_that_would_not_fit_is_refused(tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.txt").write_text("hello")
    big = src / "sparse.bin"
    free = shutil.disk_usage(tmp_path).free
    with open(big, "wb") as f:  # apparent size above the free space, no block written
        f.truncate(free + (1 << 30))
    params = EngineParams(chunk_min_bytes=1024, chunk_avg_bytes=4096, chunk_max_bytes=16384,
                          compression_level=3, incompressible_ratio=0.95, sample_bytes=1024,
                          workers=2, fsync=False)
    dr = DisasterRecovery(tmp_path / "repo", params, root=tmp_path, data_dir=tmp_path / "data",
                          store=None, clock=FakeClock())
    with pytest.raises(Conflict, match="refused: it may add up to .* MiB free"):
        dr.create_full_backup("p", {"paths": ["src"], "exclude": []})
    assert not any((tmp_path / "repo").rglob("*.chunk")) and dr.list_backups() == []
    os.unlink(big)
    assert dr.create_full_backup("p", {"paths": ["src"], "exclude": []})["files"] == 1
