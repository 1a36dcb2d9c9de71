"""Prometheus exposition of the telemetry hub (``/metrics``).

``render_metrics(ctx)`` returns ``(body, content_type)`` for the API's ``/metrics`` route: a
fresh registry holding the time-series collector (newest value of every series, named per
Prometheus conventions), the telemetry hub's own counters, the process collector, and any
collectors the caller passes (the operator's own).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from autonomous.context import OperatorContext

__all__ = [
    "STALE_SECONDS",
    "TimeSeriesCollector",
    "metric_name",
    "render_metrics",
    "render_registry",
]

STALE_SECONDS = 300.0  # Prometheus' own staleness horizon: older series are not exported
_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str, prefix: str = "atlas_") -> str:
    """A valid Prometheus metric name: ``[a-zA-Z_:][a-zA-Z0-9_:]*``, prefixed once."""
    clean = _BAD.sub("_", name.replace(".", "_").replace("-", "_"))
    if not clean.startswith(prefix):
        clean = prefix + clean
    return clean


def _label(name: str) -> str:
    clean = _LABEL_BAD.sub("_", name)
    return clean if not clean[:1].isdigit() and not clean.startswith("__") else "l_" + clean


class TimeSeriesCollector(Collector):
    """Exports the newest value of every fresh series in the time-series store."""

    def __init__(self, aggregator: Any, *, stale_seconds: float = STALE_SECONDS) -> None:
        self.aggregator = aggregator
        self.stale_seconds = stale_seconds

    def collect(self) -> Iterator[Any]:
        self.aggregator.flush()
        families: dict[str, tuple[list[str], Any]] = {}
        for name, labels, _ts, value in self.aggregator.ts.latest_all(self.stale_seconds):
            clean = {_label(k): str(v) for k, v in labels.items()}
            keys = sorted(clean)
            pname = metric_name(name)
            if pname not in families:
                cls = CounterMetricFamily if pname.endswith("_total") else GaugeMetricFamily
                families[pname] = (keys, cls(pname, f"{name} (from the ATLAS time-series store)",
                                             labels=keys))
            fam_keys, fam = families[pname]
            if fam_keys == keys:  # one label set per family (a Prometheus rule)
                fam.add_metric([clean[k] for k in keys], value)
        yield from (fam for _, fam in families.values())


class _HubCollector(Collector):
    """The telemetry hub's own counters (points written, log lines, spans, alerts)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        stats = self.hub.stats() if hasattr(self.hub, "stats") else {}
        for key, value in sorted(stats.items()):
            if isinstance(value, dict):
                fam = GaugeMetricFamily(f"atlas_telemetry_{key}", f"telemetry {key}",
                                        labels=["key"])
                for k, v in sorted(value.items()):
                    fam.add_metric([str(k)], float(v))
                yield fam
            elif isinstance(value, (int, float)):
                cls = CounterMetricFamily if key.endswith("_total") else GaugeMetricFamily
                yield cls(f"atlas_telemetry_{key}", f"telemetry {key}", value=float(value))


def render_registry(aggregator: Any, extra: Iterable[Collector] = (), hub: Any = None
                    ) -> tuple[bytes, str]:
    """Exposition text for the aggregator's series plus ``extra`` collectors."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(TimeSeriesCollector(aggregator))
    if hub is not None:
        reg.register(_HubCollector(hub))
    for c in extra:
        reg.register(c)
    return generate_latest(reg), CONTENT_TYPE_LATEST


def render_metrics(ctx: OperatorContext, extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """``(body, content_type)`` for ``GET /metrics``: telemetry series, the hub's counters,
    this process, and ``extra`` collectors (the operator's). Without a running telemetry
    subsystem only the process and ``extra`` collectors are exported."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ProcessCollector(registry=None))
    hub = ctx.subsystems.get("telemetry")
    if hub is not None:
        reg.register(TimeSeriesCollector(hub.metrics))
        reg.register(_HubCollector(hub))
    for c in extra:
        reg.register(c)
    return generate_latest(reg), CONTENT_TYPE_LATEST
