"""Grafana-importable dashboards generated from the ``Dashboard`` resources.

Each metric panel (``timeseries``, ``stat``) becomes a Grafana panel whose PromQL reads the
series the central Prometheus scraped from every host (``atlas_<metric>{host=~"$host"}``, in
the base unit the operator exports it in: ``exposition.exported``);
a ``$host`` variable lists the hosts. Panels fed by the operator's own tables (services,
errors, traces, logs, alert lists) have no Prometheus series: they are left out and named
in the dashboard's description, so nothing on the Grafana side is invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autonomous.fleet.prometheus_config import JOB
from autonomous.telemetry.exposition import exported

__all__ = ["grafana_dashboard", "panel_query"]

_DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
_UNITS = {"%": "percent", "ms": "ms", "s": "s", "bytes": "bytes", "MB": "decmbytes",
          "req/s": "reqps"}
# the exported series' base unit (``exposition.exported``) as Grafana shows it
_BASE = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit", "hertz": "hertz",
         "bytes_per_second": "Bps", "per_second": "none"}
_OVER_TIME = {"avg": "avg_over_time", "min": "min_over_time", "max": "max_over_time",
              "sum": "sum_over_time", "count": "count_over_time"}
_QUANTILE = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def panel_query(panel: Mapping[str, Any]) -> str:
    """PromQL for one metric panel of a Dashboard spec."""
    matchers = ['host=~"$host"'] + [f'{_LABEL.sub("_", k)}="{v}"'
                                    for k, v in sorted(panel.get("labels", {}).items())]
    series = f"{exported(panel['metric']).name}{{{','.join(matchers)}}}"
    agg = panel.get("aggregation", "last")
    if panel["type"] == "timeseries" or agg == "last":
        return series
    if agg == "rate":
        return f"rate({series}[$__rate_interval])"
    if agg in _QUANTILE:
        return f"quantile_over_time({_QUANTILE[agg]}, {series}[$__range])"
    return f"{_OVER_TIME[agg]}({series}[$__range])"


def _grafana_unit(panel: Mapping[str, Any]) -> str:
    """The unit of the series the panel reads: its base unit when exported in one, else the
    panel's own."""
    base = exported(panel["metric"]).unit
    return _BASE[base] if base else _UNITS.get(panel.get("unit", ""), "none")


def grafana_dashboard(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The Grafana JSON model (with ``__inputs`` for the import dialog) of one Dashboard."""
    panels: list[dict[str, Any]] = []
    left_out: list[str] = []
    for p in spec["panels"]:
        if p["type"] not in ("timeseries", "stat") or not p.get("metric"):
            left_out.append(p["title"])
            continue
        i = len(panels)
        width = 12 if p["type"] == "timeseries" else 6
        panel: dict[str, Any] = {
            "id": i + 1, "type": p["type"], "title": p["title"], "datasource": _DS,
            "gridPos": {"h": 8, "w": width, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "targets": [{"refId": "A", "datasource": _DS, "expr": panel_query(p),
                         "legendFormat": "{{host}} {{service}}" if p.get("by_series", True)
                         else "{{host}}"}],
            "fieldConfig": {"defaults": {"unit": _grafana_unit(p)},
                            "overrides": []},
            "options": {},
        }
        if p["type"] == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
        panels.append(panel)
    description = spec.get("description", "")
    if left_out:
        description += (" Not exported (fed by the operator's own tables, see its "
                        f"/dashboard/{name}): " + ", ".join(left_out) + ".")
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "datasource", "id": "prometheus", "name": "Prometheus",
                        "version": "1.0.0"}],
        "uid": f"atlas-{name}"[:40], "title": f"ATLAS fleet — {spec['title']}",
        "description": description.strip(), "tags": ["atlas", "fleet"],
        "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": f"now-{int(spec.get('range_seconds', 3600))}s", "to": "now"},
        "refresh": f"{int(spec.get('refresh_seconds', 15))}s",
        "templating": {"list": [{
            "name": "host", "label": "Host", "type": "query", "datasource": _DS,
            "query": {"query": f'label_values(up{{job="{JOB}"}}, host)', "refId": "host"},
            "definition": f'label_values(up{{job="{JOB}"}}, host)',
            "multi": True, "includeAll": True, "current": {}, "refresh": 1, "sort": 1}]},
        "panels": panels,
    }
