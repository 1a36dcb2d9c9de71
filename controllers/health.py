"""The health controller: observe metrics and services, diff them against the policy, publish
findings.

observe: one HealthAggregator cycle (a full system sample at most once per
``health_monitor.interval_seconds``; a run triggered by a ``service.`` event in between only
refreshes the services' figures, whose probes run in their own loops).
diff (pure): the health controller changes nothing in the world, so it plans no actions;
``findings`` (pure, from the same ``(desired, observed)``) lists what is wrong against the
policy thresholds in force: ``unhealthy_service``, ``threshold_exceeded``, ``anomaly`` and
``predicted_failure``.
report: service conditions ``Ready`` / ``Healthy`` from the probes; each new finding is published
as a ``health.finding`` event (for healing and alerting) and recorded in the knowledge graph
(observation → finding, about the resource); a finding that clears publishes
``health.finding_resolved``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autonomous.core.conditions import HealthStatus
from autonomous.health_monitor.health_aggregator import HealthAggregator
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "Finding", "HealthController", "findings"]

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


class HealthController(Controller):
    name = "health"
    subsystem = "health_monitor"
    order = 20
    watches = ("service.exited", "service.unhealthy", "service.healthy", "service.ready")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.aggregator: HealthAggregator | None = None
        self.active: dict[str, Finding] = {}
        self._last_sample: float | None = None

    async def start(self) -> None:
        ctx = self.ctx
        self.aggregator = HealthAggregator(
            ctx.store, ctx.clock, policy=lambda: ctx.policy()["health"],
            specs=lambda: dict(ctx.desired.current.services) if ctx.desired.current else {},
            retention=self._retention,
            observed=lambda: ctx.subsystems["services"].observed()
            if "services" in ctx.subsystems else None,
            telemetry_runs=lambda: "telemetry" in ctx.subsystems)
        await self.aggregator.start()
        ctx.subsystems["health"] = self.aggregator

    async def stop(self) -> None:
        if self.aggregator is not None:
            await self.aggregator.close()

    def _retention(self) -> dict[str, Any] | None:
        gen = self.ctx.desired.current
        tele = gen.tree.config.settings.get("telemetry") if gen else None
        ret = (tele or {}).get("retention")
        return {k: ret[k] for k in ("raw", "1m", "1h") if k in ret} if ret else None

    def _interval(self) -> float:
        gen = self.ctx.desired.current
        s = gen.tree.config.controllers.get(self.subsystem) if gen else None
        return s.interval_seconds if s else 10.0

    def desired(self) -> dict[str, Any]:
        cur = self.ctx.desired.current
        return {"policy": self.ctx.policy()["health"],
                "services": dict(cur.services) if cur else {}}

    async def observe(self) -> dict[str, Any]:
        assert self.aggregator is not None, "start() first"
        mono = self.ctx.clock.monotonic()
        sample = self._last_sample is None or mono - self._last_sample >= 0.9 * self._interval()
        if sample:
            self._last_sample = mono
        gh = await self.aggregator.cycle(sample=sample)
        agg = self.aggregator
        return {"ts": gh.ts, "score": gh.score, "services": agg.latest_services,
                "usage": agg.usage(), "anomalies": gh.anomalies,
                "predictions": gh.predictions}

    @staticmethod
    def diff(desired: dict[str, Any], observed: dict[str, Any]) -> tuple[Action, ...]:
        """Pure. The health controller plans no actions: see ``findings``."""
        return ()

    async def act(self, action: Action) -> Outcome:
        return Outcome(action, False, "the health controller plans no actions", permanent=True)

    def report(self, desired: dict[str, Any], observed: dict[str, Any],
               outcomes: list[Outcome]) -> None:
        self._conditions(desired, observed)
        current = {f.key: f for f in findings(desired, observed)}
        for key, f in current.items():
            if key not in self.active:
                self._publish(f)
        for key, f in self.active.items():
            if key not in current:
                self.ctx.bus.publish("health.finding_resolved", key=key, type=f.type,
                                     service=f.service, metric=f.metric)
        self.active = current

    def _publish(self, f: Finding) -> None:
        ctx = self.ctx
        about = ctx.graph.ensure("resource", f"Service/{f.service}" if f.service
                                 else f"Metric/{f.metric or f.subject}")
        ids = ctx.graph.record_chain(
            [("observation", f"health: {f.subject}", {"evidence": f.evidence}),
             (_GRAPH_TYPE[f.type], f.message, {"finding": f.type, "severity": f.severity,
                                               "metric": f.metric, "service": f.service})],
            context={"about": about})
        ctx.bus.publish("health.finding", **f.as_dict(), graph_node=ids[-1])

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
