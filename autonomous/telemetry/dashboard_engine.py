"""DashboardEngine: turns ``Dashboard`` resources into panel data for the API and pages.

Each panel type has a renderer: ``timeseries`` (series of [ts, value, min, max, count]),
``stat`` (one number per series or merged), ``table`` (services, errors by signature, slowest
traces, series catalogue, recent notifications), ``alerts`` (open alerts matching labels),
``logs`` (a search) and ``traces`` (recent traces). A panel with no data says so (``value``
null with a ``reason``) instead of showing a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.errors import NotFound
from autonomous.resources.kinds.telemetry import DashboardSpec, PanelSpec

__all__ = ["DashboardEngine"]


class DashboardEngine:
    """Renders dashboards; ``specs()`` returns {name: DashboardSpec} from the desired state."""

    def __init__(self, hub: Any, specs: Callable[[], dict[str, DashboardSpec]]) -> None:
        self.hub = hub
        self.specs = specs

    def list_dashboards(self) -> list[dict[str, Any]]:
        """Name, title, description and panel count of every dashboard."""
        return [{"name": n, "title": s.title, "description": s.description,
                 "panels": len(s.panels), "refresh_seconds": s.refresh_seconds}
                for n, s in sorted(self.specs().items())]

    def render(self, name: str, start: float | None = None, end: float | None = None
               ) -> dict[str, Any]:
        """Panel data of dashboard ``name`` over ``[start, end]`` (default: its range)."""
        spec = self.specs().get(name)
        if spec is None:
            raise NotFound(f"dashboard {name!r} not found; known: "
                           f"{', '.join(sorted(self.specs())) or 'none'}")
        self.hub.metrics.flush()
        end = self.hub.clock.now() if end is None else end
        start = end - spec.range_seconds if start is None else start
        panels = [self._panel(p, start, end) for p in spec.panels]
        return {"name": name, "title": spec.title, "description": spec.description,
                "start": start, "end": end, "refresh_seconds": spec.refresh_seconds,
                "panels": panels}

    def _panel(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        base = {"title": p.title, "type": p.type, "unit": p.unit}
        render = getattr(self, f"_{p.type}")
        return {**base, **render(p, start, end)}

    # -- renderers --------------------------------------------------------------------------
    def _timeseries(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        metrics = self.hub.metrics
        if p.by_series:
            rows = metrics.get_metrics(p.metric, p.labels, start, end, p.resolution)
        else:
            rows = [{"labels": p.labels,
                     "samples": metrics.ts.query(p.metric, p.labels, start, end, p.resolution)}]
        series = [{"labels": r["labels"], "points": [list(s) for s in r["samples"]]}
                  for r in rows]
        out: dict[str, Any] = {"metric": p.metric, "series": series}
        if not any(s["points"] for s in series):
            out["reason"] = f"no data for {p.metric!r} in this range"
        return out

    def _stat(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        metrics = self.hub.metrics
        if p.aggregation == "last":
            latest = metrics.ts.latest(p.metric, p.labels)
            values = [{"labels": lab, "value": v, "ts": ts} for lab, ts, v in latest
                      if start <= ts <= end]
        else:
            values = [{"labels": r["labels"], "value": r["value"]} for r in metrics.aggregate(
                p.metric, p.aggregation, labels=p.labels, start=start, end=end,
                by_series=p.by_series)]
        out: dict[str, Any] = {"metric": p.metric, "aggregation": p.aggregation,
                               "values": values}
        if not any(v["value"] is not None for v in values):
            out["reason"] = f"no data for {p.metric!r} in this range"
        return out

    def _table(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        source = p.source or ""
        if source == "errors":
            rows = self.hub.logs.aggregate_errors(since=start, until=end, limit=p.limit)
        elif source == "slow_traces":
            rows = self.hub.tracing.analyze_slowest_traces(p.limit, since=start)
        elif source == "series":
            rows = self.hub.metrics.list_metrics()[:p.limit]
        elif source == "notifications":
            rows = [{k: n[k] for k in ("id", "kind", "receiver", "state", "created_at",
                                       "delivered_at", "attempts", "last_error")}
                    for n in self.hub.alerts.notifications(p.limit)]
        else:
            rows = self._services()
        return {"source": source, "rows": rows}

    def _services(self) -> list[dict[str, Any]]:
        services = self.hub.services()
        if services is None:
            return []
        rows = []
        for name, obs in sorted(services.observed().items()):
            probe = obs.get("last_probe") or {}
            rows.append({"service": name, "running": obs.get("running"),
                         "ready": obs.get("ready"), "restarts": obs.get("restarts"),
                         "latency_ms": probe.get("latency_ms"), "error": probe.get("error")})
        return rows

    def _alerts(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        alerts = [a for a in self.hub.alerts.active_alerts()
                  if all(a["labels"].get(k) == v for k, v in p.match.items())]
        return {"alerts": alerts[:p.limit]}

    def _logs(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        return {"lines": self.hub.logs.search_logs(p.query, p.level, None, start, end,
                                                   p.limit)}

    def _traces(self, p: PanelSpec, start: float, end: float) -> dict[str, Any]:
        return {"traces": self.hub.tracing.list_traces(p.limit, since=start)}
