"""Prometheus collector for the operator itself: controllers, resources, generation, mode."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from autonomous.context import OperatorContext

__all__ = ["OperatorCollector"]

_HEALTH = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")


class OperatorCollector(Collector):
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        runs = CounterMetricFamily("atlas_controller_reconciles", "Reconcile passes",
                                   labels=["controller"])
        errs = CounterMetricFamily("atlas_controller_reconcile_errors",
                                   "Reconcile passes that raised", labels=["controller"])
        dur = GaugeMetricFamily("atlas_controller_last_reconcile_seconds",
                                "Duration of the last reconcile", labels=["controller"])
        health = GaugeMetricFamily("atlas_resource_health", "1 for the resource's health status",
                                   labels=["controller", "kind", "name", "status"])
        synced = GaugeMetricFamily("atlas_resource_synced", "1 when the resource is Synced",
                                   labels=["controller", "kind", "name"])
        restarts = CounterMetricFamily("atlas_service_restarts", "Restarts of a service",
                                       labels=["service"])
        for name, c in ctx.status.controllers.items():
            runs.add_metric([name], c.runs)
            errs.add_metric([name], c.errors)
            if c.last_duration_ms is not None:
                dur.add_metric([name], c.last_duration_ms / 1000)
            for r in list(c.resources.values()):
                for h in _HEALTH:
                    health.add_metric([name, r.kind, r.name, h], 1.0 if r.health.value == h else 0)
                synced.add_metric([name, r.kind, r.name], 1.0 if r.sync.value == "Synced" else 0)
                if name == "services" and "restarts" in r.details:
                    restarts.add_metric([r.name], r.details["restarts"])
        yield from (runs, errs, dur, health, synced, restarts)
        gen = GaugeMetricFamily("atlas_desired_generation", "Desired-state generation in force")
        if ctx.desired.current is not None:
            gen.add_metric([], ctx.desired.current.number)
        yield gen
        err = GaugeMetricFamily("atlas_desired_state_error",
                                "1 while the last edit was rejected")
        err.add_metric([], 1.0 if ctx.desired.error else 0.0)
        yield err
        mode = GaugeMetricFamily("atlas_governance_mode", "1 for the mode in force",
                                 labels=["mode"])
        current = ctx.governance.mode
        for m in ("governed", "growth", "emergency_stop"):
            mode.add_metric([m], 1.0 if m == current else 0.0)
        yield mode
