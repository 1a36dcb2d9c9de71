"""The health controller: observe metrics and services, decide in a pure diff, act through the
Executor.

observe: one HealthAggregator cycle (a full system sample at most once per
``health_monitor.interval_seconds`` × ``sampling.resample_tolerance``; a run triggered by a
``service.`` event in between only refreshes — and writes — the services' figures, whose
probes run in their own loops), plus the findings already published (``active``).
diff (pure): ``findings`` (from the same ``(desired, observed)``) lists what is wrong against
the policy in force — ``unhealthy_service``, ``threshold_exceeded``, ``anomaly``,
``predicted_failure`` — and each new one becomes a planned action with its evidence: kind
``incident`` for a service finding (published for healing to open an incident), kind
``alert`` for the others (published for alerting: the default rules ``resource_pressure``,
``failure_predicted`` and ``health_anomaly`` match them); a finding that cleared plans the
same kind with op ``clear``. Disk pressure (``threshold_exceeded`` on ``disk.``) also plans
``housekeeping`` ``free_disk``: run telemetry's and the operator's retention now and rotate
the operator log (the scheduled jobs, made due at once).
act: publish ``health.finding`` (recorded in the knowledge graph: observation → finding,
about the resource) or ``health.finding_resolved``; trigger the jobs.
report: service conditions ``Ready`` / ``Healthy`` from the probes.
The aggregator's report (predictions, the stored report row, rollups and retention when
telemetry does not run, model save / retrain) is the scheduled job ``health.report``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from autonomous.core.conditions import HealthStatus
from autonomous.core.jobs import Job
from autonomous.health_monitor.health_aggregator import HealthAggregator
from controllers.base import Action, Controller, Outcome

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["CONTROLLERS", "Finding", "HealthController", "findings", "plan"]

_GRAPH_TYPE = {"unhealthy_service": "error", "threshold_exceeded": "observation",
               "anomaly": "anomaly", "predicted_failure": "prediction"}


@dataclass(frozen=True)
class Finding:
    """Something wrong: ``type``, the service or metric, severity and the evidence."""

    type: str
    subject: str  # service name or metric key
    severity: str
    message: str
    service: str | None = None
    metric: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.type}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


def _service_findings(name: str, m: dict[str, Any], th: dict[str, float]) -> list[Finding]:
    ev = {k: m[k] for k in ("live", "ready", "consecutive_failures", "latency_p95_ms",
                            "error_rate", "last_probe")}
    if m["live"] is False:
        return [Finding("unhealthy_service", name, "severa",
                        f"{name} fails liveness ({m['consecutive_failures']} consecutive "
                        "failures)", service=name, evidence=ev)]
    if (m["error_rate"] or 0.0) > th["service_error_rate"]:
        return [Finding("unhealthy_service", name, "moderada",
                        f"{name} error rate {m['error_rate']:.0%} > "
                        f"{th['service_error_rate']:.0%}", service=name,
                        metric=f"service.error_rate{{service={name}}}", evidence=ev)]
    return []


def findings(desired: dict[str, Any], observed: dict[str, Any]) -> tuple[Finding, ...]:
    """Pure: every finding from the policy in force and the observed health."""
    th = desired["policy"]["thresholds"]
    out: list[Finding] = []
    for name in sorted(desired["services"]):
        m = observed["services"].get(name)
        if m is not None:
            out += _service_findings(name, m, th)
    for metric, (value, key) in sorted(observed["usage"].items()):
        if value is not None and value >= th[key]:
            out.append(Finding("threshold_exceeded", metric, "severa",
                               f"{metric} at {value:.1f} ≥ {th[key]:g} ({key})", metric=metric,
                               evidence={"value": value, "threshold": th[key]}))
    for a in observed["anomalies"]:
        out.append(Finding("anomaly", a["metric"], a["severity"],
                           f"anomaly on {a['metric']} ({a['severity']}, peak z "
                           f"{a['peak_z']:.1f})", metric=a["metric"],
                           service=_service_of(a["metric"]), evidence=a))
    for p in observed["predictions"]:
        out.append(Finding("predicted_failure", p["metric"], "moderada",
                           f"{p['metric']} reaches {p['threshold']:g} in "
                           f"{p['eta_seconds']:.0f} s", metric=p["metric"], evidence=p))
    return tuple(out)


def _service_of(metric: str) -> str | None:
    if "{service=" in metric:
        return metric.split("{service=", 1)[1].split(",")[0].rstrip("}")
    return None


def _resource(f: Finding) -> str:
    return f"Service/{f.service}" if f.service else f"Metric/{f.metric or f.subject}"


def plan(desired: dict[str, Any], observed: dict[str, Any]) -> tuple[Action, ...]:
    """Pure: raise each new finding, clear each one that is gone, free disk under pressure."""
    current = {f.key: f for f in findings(desired, observed)}
    active: dict[str, dict[str, Any]] = observed.get("active") or {}
    out: list[Action] = []
    for key, f in current.items():
        if key in active:
            continue
        kind = "incident" if f.type == "unhealthy_service" else "alert"
        out.append(Action(kind, _resource(f), f.message,
                          {"op": "raise", "finding": key, "type": f.type},
                          {**f.evidence, "finding": f.as_dict()}))
        if f.type == "threshold_exceeded" and (f.metric or "").startswith("disk."):
            out.append(Action("housekeeping", _resource(f),
                              f"disk pressure: {f.message}; retention and log rotation now",
                              {"op": "free_disk", "finding": key}, dict(f.evidence)))
    for key in sorted(set(active) - set(current)):
        was = active[key]
        kind = "incident" if was["type"] == "unhealthy_service" else "alert"
        res = f"Service/{was['service']}" if was.get("service") else \
            f"Metric/{was.get('metric') or was['subject']}"
        out.append(Action(kind, res, f"finding cleared: {was['message']}",
                          {"op": "clear", "finding": key, "type": was["type"]},
                          {"was": dict(was)}))
    return tuple(out)


class HealthController(Controller):
    name = "health"
    subsystem = "health_monitor"
    order = 20
    watches = ("service.exited", "service.unhealthy", "service.healthy", "service.ready")
    offline_plan = ("it acts on the running health monitor's findings (samples, anomaly "
                    "state), which only the running operator holds")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.aggregator: HealthAggregator | None = None
        self.active: dict[str, dict[str, Any]] = {}  # finding key -> the published finding
        self._last_sample: float | None = None

    async def start(self) -> None:
        ctx = self.ctx
        self.aggregator = HealthAggregator(
            ctx.store, ctx.clock, policy=lambda: ctx.policy()["health"],
            specs=lambda: dict(ctx.desired.current.services) if ctx.desired.current else {},
            retention=self._retention,
            observed=self._services_observed,
            telemetry_runs=lambda: "telemetry" in ctx.subsystems,
            interval=self._configured_interval)
        await self.aggregator.start()
        ctx.subsystems["health"] = self.aggregator
        agg = self.aggregator
        agg.report_in_cycle = False  # housekeeping: a scheduled job, not part of observe
        ctx.jobs.add(Job("health.report", every=lambda: float(
            ctx.policy()["health"]["sampling"]["report_interval_seconds"]),
            run=agg.report, thread=False))

    def _services_observed(self) -> dict[str, dict[str, Any]] | None:
        """The services controller's observed state (None while it does not run). A declared
        service held stopped (isolated / paused) that has no process yet — after an operator
        restart — is there too, not running: it is down, not "no data"."""
        svc = self.ctx.subsystems.get("services")
        if svc is None:
            return None
        obs: dict[str, dict[str, Any]] = svc.observed()
        overrides = svc.overrides() if hasattr(svc, "overrides") else {}
        for name, ov in overrides.items():
            if name not in obs and (ov.get("isolated") or ov.get("paused")):
                why = "isolated" if ov.get("isolated") else "paused"
                obs[name] = {"running": False, "returncode": None, "held": why,
                             "reason": ov.get("reason"), "consecutive_failures": 0,
                             "probe_history": [], "last_probe": None}
        return obs

    async def stop(self) -> None:
        self.ctx.jobs.remove("health.report")
        if self.aggregator is not None:
            await self.aggregator.close()

    def _retention(self) -> dict[str, Any] | None:
        gen = self.ctx.desired.current
        tele = gen.tree.config.settings.get("telemetry") if gen else None
        ret = (tele or {}).get("retention")
        return {k: ret[k] for k in ("raw", "1m", "1h") if k in ret} if ret else None

    def _configured_interval(self) -> float | None:
        gen = self.ctx.desired.current
        s = gen.tree.config.controllers.get(self.subsystem) if gen else None
        return float(s.interval_seconds) if s else None

    def desired(self) -> dict[str, Any]:
        cur = self.ctx.desired.current
        return {"policy": self.ctx.policy()["health"],
                "services": dict(cur.services) if cur else {}}

    async def observe(self) -> dict[str, Any]:
        assert self.aggregator is not None, "start() first"
        mono = self.ctx.clock.monotonic()
        tolerance = self.ctx.policy()["health"]["sampling"]["resample_tolerance"]
        sample = self._last_sample is None or \
            mono - self._last_sample >= tolerance * self.aggregator.sample_interval()
        if sample:
            self._last_sample = mono
        gh = await self.aggregator.cycle(sample=sample)
        agg = self.aggregator
        return {"ts": gh.ts, "score": gh.score, "services": agg.latest_services,
                "usage": agg.usage(), "anomalies": gh.anomalies,
                "predictions": gh.predictions, "active": dict(self.active)}

    @staticmethod
    def diff(desired: dict[str, Any], observed: dict[str, Any]) -> tuple[Action, ...]:
        """Pure: see ``plan``."""
        return plan(desired, observed)

    async def act(self, action: Action) -> Outcome:
        op, key = action.params.get("op"), str(action.params.get("finding"))
        if action.kind in ("incident", "alert") and op == "raise":
            f = Finding(**{k: v for k, v in action.evidence["finding"].items() if k != "key"})
            node = self._publish(f)
            self.active[key] = f.as_dict()
            return Outcome(action, True, f"published health.finding {key}",
                           details={"graph_node": node})
        if action.kind in ("incident", "alert") and op == "clear":
            was = self.active.pop(key, None) or dict(action.evidence.get("was") or {})
            self.ctx.bus.publish("health.finding_resolved", key=key, type=was.get("type"),
                                 service=was.get("service"), metric=was.get("metric"))
            return Outcome(action, True, f"published health.finding_resolved {key}")
        if action.kind == "housekeeping" and op == "free_disk":
            ran = [j for j in ("telemetry.housekeeping", "operator.retention")
                   if self.ctx.jobs.trigger(j)]
            hub = self.ctx.subsystems.get("telemetry")
            rotated = hub.logs.rotate() if hub is not None else None
            if not ran and rotated is None:
                return Outcome(action, False, "no retention job and no log to rotate: the "
                               "telemetry controller is not running", permanent=True)
            return Outcome(action, True, f"ran now: {', '.join(ran) or 'no job'}; "
                           f"log rotated: {rotated}", details={"jobs": ran, "rotated": rotated})
        return Outcome(action, False, f"the health controller has no action {action.kind} "
                       f"{op}", permanent=True)

    def report(self, desired: dict[str, Any], observed: dict[str, Any],
               outcomes: list[Outcome]) -> None:
        self._conditions(desired, observed)

    def _publish(self, f: Finding) -> str:
        ctx = self.ctx
        about = ctx.graph.ensure("resource", f"Service/{f.service}" if f.service
                                 else f"Metric/{f.metric or f.subject}")
        ids = ctx.graph.record_chain(
            [("observation", f"health: {f.subject}", {"evidence": f.evidence}),
             (_GRAPH_TYPE[f.type], f.message, {"finding": f.type, "severity": f.severity,
                                               "metric": f.metric, "service": f.service})],
            context={"about": about})
        ctx.bus.publish("health.finding", **f.as_dict(), graph_node=ids[-1])
        return ids[-1]

    def _conditions(self, desired: dict[str, Any], observed: dict[str, Any]) -> None:
        now = self.ctx.clock.now()
        for name in desired["services"]:
            m = observed["services"].get(name) or {}
            st = self.ctx.status.resource(self.name, "Service", name)
            live, ready = m.get("live"), m.get("ready")
            err = (m.get("last_probe") or {}).get("error")
            st.set_condition("Ready", ready, "ReadinessProbe" if ready else
                             ("ReadinessFailed" if ready is False else "NotProbed"),
                             err or ("ready" if ready else "no readiness yet"), now)
            st.set_condition("Healthy", live, "LivenessProbe" if live else
                             ("LivenessFailed" if live is False else "NotProbed"),
                             err or f"score {m.get('score')}", now)
            st.health = (HealthStatus.HEALTHY if live and ready else HealthStatus.DEGRADED
                         if live is False or ready is False else HealthStatus.UNKNOWN)
            st.details = {"score": m.get("score"), "latency_p95_ms": m.get("latency_p95_ms"),
                          "error_rate": m.get("error_rate"), "checked_at": now}


CONTROLLERS = [HealthController]
