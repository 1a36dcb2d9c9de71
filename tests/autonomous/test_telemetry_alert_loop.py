"""Alerting in the one loop: a stopped service is down (not "no data"), an outage of 60 s fires
``service_down`` with the default policy and cadences, recovery by any path resolves its
alerts (rule and human ones), and the telemetry and health diffs are pure (hypothesis)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autonomous.resources.policy.telemetry import AlertingPolicy
from autonomous.telemetry.alert_plan import AlertView
from autonomous.telemetry.alert_rules import Condition, alert_labels, fingerprint
from autonomous.testing import make_context
from controllers.health import HealthController
from controllers.manager import ControllerManager
from controllers.telemetry import TelemetryController


class Supervised:
    """The services facade's ``observed()`` for the declared services, as the services
    controller reports a supervised process (running or stopped: isolated, paused, exited).
    The health monitor reads exactly this; the test moves the world by editing it."""

    def __init__(self, clock: Any, names: list[str]) -> None:
        self.clock = clock
        self.state = {n: self._up() for n in names}
        self.held: dict[str, dict[str, Any]] = {}

    def _up(self) -> dict[str, Any]:
        now = self.clock.now()
        probe = {"ok": True, "latency_ms": 2.0, "status_code": 200, "error": None, "ts": now,
                 "kind": "liveness"}
        return {"pid": 4242, "running": True, "returncode": None, "started_at": now - 600,
                "live": True, "ready": True, "last_probe": probe, "consecutive_failures": 0,
                "probe_history": [probe]}

    def up(self, name: str) -> None:
        self.state[name] = self._up()

    def stop(self, name: str, returncode: int = -15) -> None:
        self.state[name] = {**self.state[name], "running": False, "returncode": returncode,
                            "live": None, "ready": None}

    def hold(self, name: str, why: str = "isolated") -> None:
        """As after an operator restart: held stopped by an override, no process started."""
        self.state.pop(name, None)
        self.held[name] = {"isolated": why == "isolated", "paused": why == "paused",
                           "reason": f"test: {why}"}

    def observed(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.state)

    def overrides(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.held)


async def _drain() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def _stack(tmp_path):
    ctx = make_context(tmp_path)
    svc = Supervised(ctx.clock, sorted(ctx.desired.current.services))
    ctx.subsystems["services"] = svc
    health, tele = HealthController(ctx), TelemetryController(ctx)
    await health.start()
    await tele.start()
    return ctx, svc, health, tele, ControllerManager(ctx, [health, tele])


def _service_down(ctx) -> list[dict[str, Any]]:
    hub = ctx.subsystems["telemetry"]
    return [a for a in hub.alerts.active_alerts() if a["rule"] == "service_down"
            and a["labels"]["service"] == "nexus"]


async def _run(ctx, mgr, health, tele, seconds: int, t0: int) -> int:
    """The default cadences on the fake clock: health every 10 s, telemetry every 15 s."""
    for t in range(t0 + 1, t0 + seconds + 1):
        ctx.clock.advance(1)
        if t % 10 == 0:
            await mgr.reconcile(health)
        if t % 15 == 0:
            await _drain()
            await mgr.reconcile(tele)
            await mgr.reconcile(tele)  # the pass asked for at once (notices)
    return t0 + seconds


async def test_stopped_service_is_down_fires_in_60s_and_recovery_resolves(tmp_path):
    ctx, svc, health, tele, mgr = await _stack(tmp_path)
    try:
        t = await _run(ctx, mgr, health, tele, 30, 0)
        assert _service_down(ctx) == []
        svc.stop("nexus")  # isolated / paused / exited: not running, not probed
        ctx.bus.publish("alert.human", service="nexus", reason="crash loop: isolated",
                        severity="high", source="self_healing", message="nexus isolated")
        stopped_at = ctx.clock.now()
        t = await _run(ctx, mgr, health, tele, 60, t)
        (down,) = _service_down(ctx)
        assert down["state"] == "firing", down
        # health writes 0 at its next pass (≤ 10 s), telemetry opens it (≤ 15 s later) and
        # fires it 15 s on: within 40 s of the stop at the default cadences
        assert down["fired_at"] - stopped_at <= 40, down["fired_at"] - stopped_at
        # it stays down while stopped: no probe is not "up"
        t = await _run(ctx, mgr, health, tele, 180, t)
        assert [a["state"] for a in _service_down(ctx)] == ["firing"]
        hub = ctx.subsystems["telemetry"]
        manual = [a for a in hub.alerts.active_alerts() if a["source"] == "manual"]
        assert len(manual) == 1
        # recovery by another path than the healer (a human started it): both resolve
        svc.up("nexus")
        await _run(ctx, mgr, health, tele, 30, t)
        assert _service_down(ctx) == []
        assert not [a for a in hub.alerts.active_alerts() if a["source"] == "manual"]
        human = hub.alerts.db.get(manual[0]["id"])
        assert human["state"] == "resolved"
        why = [x for x in hub.alerts.db.transitions(human["id"]) if x["to_state"] == "resolved"]
        assert why[0]["actor"] == "telemetry" and "recovered" in why[0]["reason"]
        # the decisions went through the Executor into the knowledge graph
        node = ctx.status.controller("telemetry").last_decisions[f"Alert/{down['fingerprint']}"]
        assert [n["type"] for n in ctx.graph.why(node)][-4:] == [
            "observation", "decision", "action", "outcome"]
    finally:
        await tele.stop()
        await health.stop()
        ctx.store.close()


async def test_held_service_without_process_is_down_not_no_data(tmp_path):
    ctx, svc, health, tele, mgr = await _stack(tmp_path)
    try:
        t = await _run(ctx, mgr, health, tele, 30, 0)
        svc.hold("nexus", "paused")  # no process: not in the supervisor's table at all
        await _run(ctx, mgr, health, tele, 60, t)
        assert [a["state"] for a in _service_down(ctx)] == ["firing"]
        m = ctx.subsystems["health"].latest_services["nexus"]
        assert m["live"] is False and "paused: test: paused" in m["last_probe"]["error"]
    finally:
        await tele.stop()
        await health.stop()
        ctx.store.close()


# -- purity (hypothesis) ----------------------------------------------------------------------
_CTX_POLICY: dict[str, Any] = {}


def _alerting() -> AlertingPolicy:
    if not _CTX_POLICY:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            ctx = make_context(Path(d))
            _CTX_POLICY.update(copy.deepcopy(ctx.policy()))
            ctx.store.close()
    return AlertingPolicy.model_validate(_CTX_POLICY["telemetry"]["alerting"])


def _episode(i: int, labels: dict[str, str], state: str, since: float) -> dict[str, Any]:
    return {"id": i, "fingerprint": fingerprint(labels), "rule": labels["alertname"],
            "source": "rule", "labels": labels, "severity": labels["severity"], "state": state,
            "pending_since": since, "notified_at": None, "notify_count": 0, "acked_by": None,
            "resolved_notified": 0}


@st.composite
def views(draw):
    pol = _alerting()
    rule = next(r for r in pol.rules if r.name == "service_down")
    now = 1_700_000_000.0
    conds, open_rule, notifiable = [], {}, []
    for i, svc in enumerate(draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True))):
        labels = alert_labels(rule, {"service": svc})
        value = draw(st.sampled_from([0.0, 1.0]))
        conds.append(Condition(rule.name, labels, fingerprint(labels), value, value < 1, {}))
        state = draw(st.sampled_from([None, "pending", "firing"]))
        if state is not None:
            ep = _episode(i + 1, labels, state, now - draw(st.integers(0, 60)))
            open_rule[ep["fingerprint"]] = ep
            if state == "firing":
                notifiable.append(ep)
    return pol, AlertView(now=now, conditions=tuple(conds), open_rule=open_rule,
                          notifiable=tuple(notifiable), services={})


@settings(max_examples=60, deadline=None)
@given(views())
def test_telemetry_diff_is_pure_and_deterministic(pv) -> None:
    pol, view = pv
    before = copy.deepcopy(view)
    desired = {"alerting": pol, "error_rate_threshold": 0.05}
    a = TelemetryController.diff(desired, {"view": view})
    assert a == TelemetryController.diff(desired, {"view": view})
    assert view == before  # side-effect free
    assert {x.kind for x in a} <= {"alert", "notify"}


def test_telemetry_diff_empty_when_nothing_to_do() -> None:
    pol = _alerting()
    rule = next(r for r in pol.rules if r.name == "service_down")
    labels = alert_labels(rule, {"service": "a"})
    quiet = AlertView(now=1e9, conditions=(Condition(rule.name, labels, fingerprint(labels),
                                                     1.0, False, {}),), services={})
    assert TelemetryController.diff({"alerting": pol}, {"view": quiet}) == ()
    assert TelemetryController.diff({"alerting": pol}, {}) == ()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b"]), st.booleans(), max_size=2),
       st.lists(st.sampled_from([95.0, 10.0, None]), max_size=1))
def test_health_diff_is_pure_and_empty_once_published(live, disk) -> None:
    ok = {"live": True, "ready": True, "consecutive_failures": 0, "latency_p95_ms": 3.0,
          "error_rate": 0.0, "last_probe": None}
    desired = {"policy": {"thresholds": {"service_error_rate": 0.05, "disk_percent": 90}},
               "services": dict.fromkeys(live)}
    obs = {"services": {n: {**ok, "live": v} for n, v in live.items()},
           "usage": {"disk.percent{mount=/}": (d, "disk_percent") for d in disk},
           "anomalies": [], "predictions": [], "active": {}}
    before = copy.deepcopy(obs)
    planned = HealthController.diff(desired, obs)
    assert planned == HealthController.diff(desired, obs) and obs == before
    raised = {a.params["finding"]: a.evidence["finding"] for a in planned
              if a.params["op"] == "raise"}
    assert len(raised) == sum(not v for v in live.values()) + sum(
        d is not None and d >= 90 for d in disk)
    assert ("housekeeping" in {a.kind for a in planned}) == any(
        d is not None and d >= 90 for d in disk)
    assert HealthController.diff(desired, {**obs, "active": raised}) == ()
    # a published finding that is gone plans its clear
    gone = {"x:y": {"type": "anomaly", "service": None, "metric": "m", "subject": "m",
                    "message": "was"}}
    (clear,) = HealthController.diff(desired, {**obs, "active": {**raised, **gone}})
    assert clear.params == {"op": "clear", "finding": "x:y", "type": "anomaly"}


# -- the real stack: services controller, real process, isolation -------------------------------
SERVICE_YAML = """apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: x}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "x", "--port", "{port}"]
  port: {port}
  health: {{path: /health, period_seconds: 0.25, timeout_seconds: 0.5, failure_threshold: 2,
           startup_grace_seconds: 0}}
  stop_grace_seconds: 2
"""


async def _until(pred, what: str, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = pred()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={pred()!r}")


async def test_isolated_real_service_stays_down_until_started_again(tmp_path):
    from autonomous.core.clock import SystemClock
    from autonomous.testing import calm_gates, copy_default_tree, fast_alerting, free_port
    from controllers.services import ServicesController

    root = calm_gates(copy_default_tree(tmp_path / "root"))
    for f in (root / "desired_state").glob("*.yaml"):
        if "kind: Service" in f.read_text():
            f.unlink()
    (root / "desired_state" / "x.yaml").write_text(SERVICE_YAML.format(port=free_port()))
    fast_alerting(root, window_seconds=5)
    cfg = root / "config" / "autonomous.yaml"
    cfg.write_text(cfg.read_text().replace("health_monitor: {enabled: true, interval_seconds: 10}",
                                           "health_monitor: {enabled: true, interval_seconds: 1}"))
    ctx = make_context(tmp_path, root=root, clock=SystemClock())
    assert ctx.desired.current is not None, ctx.desired.error
    manager = ControllerManager(ctx, [ServicesController(ctx), HealthController(ctx),
                                      TelemetryController(ctx)])
    await manager.start()
    try:
        hub = ctx.subsystems["telemetry"]

        def up() -> list:
            return [v for _, _, v in hub.ts.latest("service.up", {"service": "x"})]

        def down_alerts() -> list:
            return [a for a in hub.alerts.active_alerts() if a["rule"] == "service_down"
                    and a["labels"]["service"] == "x"]

        await _until(lambda: up() == [1.0], "x up")
        ctx.bus.publish("alert.human", service="x", reason="isolated", severity="high",
                        source="self_healing", message="x isolated")
        ctx.subsystems["services"].set_override("x", isolated=True, reason="test: isolate")
        await _until(lambda: [a["state"] for a in down_alerts()] == ["firing"],
                     "service_down firing for the isolated service")
        fired = down_alerts()[0]
        # while isolated (not probed) the health monitor keeps writing 0: three more writes,
        # each evaluated by telemetry after it, and the alert is still firing
        since = ctx.clock.now()
        await _until(lambda: len([s for s in hub.ts.query("service.up", {"service": "x"},
                                                           start=since)]) >= 3,
                     "three more service.up points while isolated")
        runs = ctx.status.controller("telemetry").runs
        await _until(lambda: ctx.status.controller("telemetry").runs >= runs + 2,
                     "telemetry passes after them")
        assert up() == [0.0] and [a["id"] for a in down_alerts()] == [fired["id"]]
        assert down_alerts()[0]["state"] == "firing"
        # started again (a human clears the isolation): both alerts resolve
        ctx.subsystems["services"].set_override("x", isolated=False, reason="test: release")
        await _until(lambda: not down_alerts(), "service_down resolved", 40)
        await _until(lambda: not [a for a in hub.alerts.active_alerts()
                                  if a["source"] == "manual"], "human alert resolved")
        assert hub.alerts.db.get(fired["id"])["state"] == "resolved"
    finally:
        await manager.stop()
        ctx.store.close()


def test_predicted_failure_reaches_a_default_rule_and_clears(tmp_path) -> None:
    from autonomous.store.timeseries import TimeSeriesStore
    from autonomous.telemetry.alert_manager import AlertManager

    ctx = make_context(tmp_path)
    try:
        am = AlertManager(ctx.store, ctx.clock, TimeSeriesStore(ctx.store, ctx.clock),
                          ctx.policy)
        finding = {"type": "predicted_failure", "metric": "disk.percent{mount=/}",
                   "message": "disk.percent{mount=/} reaches 90 in 3600 s"}
        assert am.observe_event("health.finding", finding) == 1
        am.evaluate_rules()
        (a,) = am.active_alerts()
        assert (a["rule"], a["state"]) == ("failure_predicted", "firing")
        assert a["labels"]["metric"] == "disk.percent{mount=/}"
        am.observe_event("health.finding_resolved", {"type": "predicted_failure",
                                                     "metric": "disk.percent{mount=/}"})
        am.evaluate_rules()
        assert am.active_alerts() == [] and am.db.get(a["id"])["state"] == "resolved"
    finally:
        ctx.store.close()
