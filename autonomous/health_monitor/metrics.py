"""Metric naming shared by the health monitor: flattening snapshots and metric keys.

A reading is ``(name, labels, value)``; its key is Prometheus-style, ``name{k=v,...}``
(``disk.percent{mount=/}``), and ``parse_key`` turns it back. The keys are what anomalies,
predictions and ``/api/health/history?metric=`` refer to.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METRIC_KEY_PATTERN", "flatten", "matches", "metric_key", "parse_key",
           "resource_usage"]

Reading = tuple[str, dict[str, str], float]

# Exactly the keys :func:`parse_key` accepts (a name without ``{``, or ``name{...}`` whose
# comma-separated labels are empty or ``k=v``), for the API's OpenAPI document: a request the
# schema calls valid is one the parser takes
METRIC_KEY_PATTERN = r"^(?:[^{]*|[^{]*\{(?:[^,=]*=[^,]*)?(?:,(?:[^,=]*=[^,]*)?)*\})$"


def metric_key(name: str, labels: dict[str, str] | None = None) -> str:
    """``name`` or ``name{k=v,...}`` with labels sorted."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`metric_key`; raises ValueError on a malformed key."""
    if "{" not in key:
        return key, {}
    if not key.endswith("}"):
        raise ValueError(f"metric key {key!r} must end with '}}' (form: name{{k=v,...}})")
    name, _, body = key[:-1].partition("{")
    labels: dict[str, str] = {}
    for part in filter(None, body.split(",")):
        k, sep, v = part.partition("=")
        if not sep:
            raise ValueError(f"metric key {key!r}: label {part!r} needs the form k=v")
        labels[k] = v
    return name, labels


def matches(key: str, prefixes: list[str]) -> bool:
    """Whether a metric key starts with one of ``prefixes``."""
    return any(key.startswith(p) for p in prefixes)


def flatten(snap: dict[str, Any]) -> list[Reading]:
    """Every numeric reading of a SystemMetrics snapshot (nulls are left out)."""
    out: list[Reading] = []
    cpu, mem = snap["cpu"], snap["memory"]
    _add(out, "cpu.percent", {}, cpu["percent"])
    _add(out, "load.1m", {}, cpu["load"]["1m"])
    _add(out, "cpu.frequency_mhz", {}, cpu["frequency_mhz"]["current"])
    for sensor, t in (cpu["temperature_c"] or {}).items():
        _add(out, "cpu.temperature_c", {"sensor": sensor}, t)
    _add(out, "ram.percent", {}, mem["ram"]["percent"])
    _add(out, "ram.used_mb", {}, mem["ram"]["used_mb"])
    _add(out, "swap.percent", {}, mem["swap"]["percent"])
    for d in snap["gpu"]["devices"] or []:
        lab = {"gpu": str(d["index"])}
        _add(out, "gpu.utilization_percent", lab, d["utilization_percent"])
        _add(out, "gpu.vram_percent", lab, d["vram_percent"])
        _add(out, "gpu.temperature_c", lab, d["temperature_c"])
    for mount, d in snap["disks"].items():
        _add(out, "disk.percent", {"mount": mount}, d["percent"])
        _add(out, "disk.free_gb", {"mount": mount}, d["free_gb"])
    io = snap["io"]
    for k, v in (io["disk"] or {}).items():
        _add(out, f"diskio.{k}", {}, v)
    for nic, rates in (io["network"] or {}).items():
        _add(out, "net.rx_bps", {"nic": nic}, rates["rx_bps"])
        _add(out, "net.tx_bps", {"nic": nic}, rates["tx_bps"])
    for target, r in ((snap.get("network_probe") or {}).get("targets") or {}).items():
        _add(out, "net.latency_ms", {"target": target}, r["latency_ms"])
        _add(out, "net.loss_percent", {"target": target}, r["loss_percent"])
    return out


def _add(out: list[Reading], name: str, labels: dict[str, str], value: Any) -> None:
    if value is not None:
        out.append((name, labels, float(value)))


def resource_usage(snap: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Use (%) per resource kind and metric key, for thresholds and the health score."""
    mem = snap["memory"]
    usage: dict[str, dict[str, float | None]] = {
        "cpu": {"cpu.percent": snap["cpu"]["percent"]},
        "ram": {"ram.percent": mem["ram"]["percent"]},
        "swap": {"swap.percent": mem["swap"]["percent"] if mem["swap"]["total_mb"] else None},
        "disk": {metric_key("disk.percent", {"mount": m}): d["percent"]
                 for m, d in snap["disks"].items()},
    }
    devices = snap["gpu"]["devices"] or []
    usage["gpu"] = {metric_key("gpu.utilization_percent", {"gpu": str(d["index"])}):
                    d["utilization_percent"] for d in devices}
    usage["vram"] = {metric_key("gpu.vram_percent", {"gpu": str(d["index"])}): d["vram_percent"]
                     for d in devices}
    return usage
