"""Prometheus exposition of the telemetry hub (``/metrics``).

``render_metrics(ctx)`` returns ``(body, content_type)`` for the API's ``/metrics`` route: a
fresh registry holding the time-series collector (newest value of every series, named per
Prometheus conventions, in base units: ``exported``), the telemetry hub's own counters, the
process collector, and any collectors the caller passes (the operator's own).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from autonomous.context import OperatorContext

__all__ = [
    "STALE_SECONDS",
    "Exported",
    "TimeSeriesCollector",
    "exported",
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


# Prometheus names carry base units (seconds, bytes, ratios, hertz): a series stored with a
# scaled unit in its name is exported in the base unit, its value converted
# (``service.probe_latency_ms`` 12 → ``atlas_service_probe_latency_seconds`` 0.012). The
# project's ``_mb`` / ``_gb`` are MiB / GiB (``system_metrics``), ``_bps`` bytes per second.
_BASE_UNITS: dict[str, tuple[str, float]] = {
    "_per_s": ("_per_second", 1.0), "_ms": ("_seconds", 1e-3), "_s": ("_seconds", 1.0),
    "_kb": ("_bytes", 2.0**10), "_mb": ("_bytes", 2.0**20), "_gb": ("_bytes", 2.0**30),
    "_mhz": ("_hertz", 1e6), "_bps": ("_bytes_per_second", 1.0), "_percent": ("_ratio", 0.01),
}


@dataclass(frozen=True)
class Exported:
    """How one stored series is exported: its Prometheus ``name``, the factor its values are
    multiplied by, and the base ``unit`` (None: the name carries no unit to convert)."""

    name: str
    scale: float = 1.0
    unit: str | None = None


def exported(name: str) -> Exported:
    """The Prometheus name (prefixed, base unit) and value scale of a stored series."""
    clean = metric_name(name)
    stem, total = (clean[:-6], "_total") if clean.endswith("_total") else (clean, "")
    for suffix, (base, scale) in _BASE_UNITS.items():
        if stem.endswith(suffix) and len(stem) > len("atlas_") + len(suffix):
            return Exported(stem[:-len(suffix)] + base + total, scale, base[1:])
    return Exported(clean)


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
        # two stored names can export as one ("x.y_ms" and "x_y_ms", "a_ms" and "a_s": names
        # come from the services' heartbeats too): the first series wins, as a duplicate
        # series would make Prometheus reject the whole scrape
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for name, labels, _ts, value in self.aggregator.ts.latest_all(self.stale_seconds):
            clean = {_label(k): str(v) for k, v in labels.items()}
            keys = sorted(clean)
            ex = exported(name)
            if ex.name not in families:
                cls = CounterMetricFamily if ex.name.endswith("_total") else GaugeMetricFamily
                unit = f", in {ex.unit}" if ex.unit else ""
                families[ex.name] = (keys, cls(ex.name, f"{name} (from the ATLAS time-series "
                                               f"store{unit})", labels=keys))
            fam_keys, fam = families[ex.name]
            values = tuple(clean[k] for k in keys)
            if fam_keys == keys and (ex.name, values) not in seen:  # one label set a family
                seen.add((ex.name, values))
                fam.add_metric(list(values), value * ex.scale)
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
