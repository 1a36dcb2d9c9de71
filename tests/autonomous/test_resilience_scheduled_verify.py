"""Scheduled verify: the resilience controller re-hashes each plan's latest backup on the
policy interval, fires ``backup_damaged`` through the telemetry alert manager when a chunk is
damaged, and resolves it when a later verify is clean."""

from __future__ import annotations

import pytest

from autonomous.telemetry.hub import TelemetryHub
from autonomous.testing import make_context
from controllers.manager import ControllerManager
from controllers.resilience import ResilienceController


@pytest.fixture()
def ctx(tmp_path):
    c = make_context(tmp_path)
    yield c
    c.store.close()


def _damaged_alerts(hub: TelemetryHub) -> list[dict]:
    return [a for a in hub.alerts.db.open_alerts(source="manual").values()
            if a["labels"].get("alertname") == "backup_damaged"]


def _verifies(outcomes) -> list:
    return [o for o in outcomes if o.action.params.get("op") == "verify"]


async def test_scheduled_verify_alerts_on_damage_and_resolves_when_clean(ctx):
    # verify more often than the plan backs up (a new backup would rewrite the chunk itself)
    (ctx.root / "policies" / "zz_verify.yaml").write_text(
        "apiVersion: atlas.autonomous/v1\nkind: PolicySet\nmetadata: {name: zz-verify}\n"
        "spec:\n  mode: governed\n  policy:\n    resilience:\n      backup:\n"
        "        verify_every_seconds: 20\n")
    ctx.desired.reload()
    assert ctx.desired.error is None, ctx.desired.error
    every = ctx.policy()["resilience"]["backup"]["verify_every_seconds"]
    assert every == 20
    hub = TelemetryHub.from_context(ctx)
    ctx.subsystems["telemetry"] = hub
    ctl = ResilienceController(ctx)
    mgr = ControllerManager(ctx, [ctl])
    await ctl.start()
    facade = ctx.subsystems["resilience"]
    b = await facade.backup("operator", "full")
    assert _verifies(await mgr.reconcile(ctl)) == []  # not due before the interval
    manifest = facade.recovery("operator").get(b["id"])
    # a chunk of a policy file: the live copy is unchanged, so repair can rewrite it
    victim = next(e for e in manifest.entries
                  if e.chunks and e.path.startswith("policies/")).chunks[0]
    path = facade.recovery("operator").repo / "chunks" / victim[:2] / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    ctx.clock.advance(every)
    [v] = _verifies(await mgr.reconcile(ctl))
    assert v.ok and v.details["ok"] is False and victim in v.details["damaged_chunks"]
    [alert] = _damaged_alerts(hub)
    assert alert["labels"]["plan"] == "operator" and alert["labels"]["backup"] == b["id"]
    assert alert["severity"] == "critical" and alert["state"] == "firing"
    assert _verifies(await mgr.reconcile(ctl)) == []  # next one waits for the interval

    rep = await facade.verify(b["id"], repair=True)
    assert rep["ok"], rep
    ctx.clock.advance(every)
    [v] = _verifies(await mgr.reconcile(ctl))
    assert v.details["ok"] is True and v.details["resolved"] == [alert["id"]]
    assert _damaged_alerts(hub) == []
    assert hub.alerts.db.get(alert["id"])["state"] == "resolved"
    await ctl.stop()
