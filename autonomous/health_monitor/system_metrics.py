"""SystemMetrics: what the host reports about CPU, memory, GPU, disks and network.

``sample()`` is the fast path (every ``health_monitor.interval_seconds``): CPU per core, load,
frequency, temperatures, throttling, RAM, swap, GPU, disk space per mount, disk I/O and network
rates. The top-process sweep (``sample_processes``) and the TCP latency probe
(``probe_network``) run on their own slower cadences and are merged into the snapshot.

A value the platform cannot give is ``None`` and its dotted path is listed in the snapshot's
``unavailable`` map with a reason (``"no sensors"``, ``"no GPU"``) — never an invented number.
Rates are computed from real elapsed time (``time.monotonic``) because the counters are real.

Health score (``get_health_score``), documented formula: each resource r with use u (%) and
threshold t scores ``s(u) = 100`` for ``u <= knee·t``, falling linearly to 50 at ``u = t`` and
to 0 at ``u = 100``; the score is ``Σ w_r s_r / Σ w_r`` over the resources that were measured
(weights and knee from policy ``health.score``).
"""

from __future__ import annotations

import glob
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from autonomous.core.clock import Clock, SystemClock
from autonomous.health_monitor.gpu import GpuReader
from autonomous.health_monitor.metrics import flatten, resource_usage
from autonomous.health_monitor.network import probe_targets

__all__ = ["SystemMetrics", "usage_score"]

_RESOURCE_THRESHOLD = {"cpu": "cpu_percent", "ram": "ram_percent", "disk": "disk_percent",
                       "swap": "swap_percent", "gpu": "gpu_percent", "vram": "vram_percent"}


def usage_score(use: float, threshold: float, knee: float) -> float:
    """Piecewise-linear 0–100 score of one resource (see the module docstring)."""
    low = knee * threshold
    if use <= low:
        return 100.0
    if use <= threshold:
        return 100.0 - 50.0 * (use - low) / max(threshold - low, 1e-9)
    return max(0.0, 50.0 - 50.0 * (use - threshold) / max(100.0 - threshold, 1e-9))


class SystemMetrics:
    """Samples the host; keeps the latest snapshot and the slow-path results."""

    def __init__(self, clock: Clock | None = None, *, gpu: GpuReader | None = None) -> None:
        self.clock = clock or SystemClock()
        self.gpu = gpu or GpuReader()
        self.cpu_info: dict[str, Any] | None = None
        self.cpu_info_error: str | None = None
        self._prev_io: tuple[float, Any, dict[str, Any]] | None = None
        self._throttle_files = sorted(glob.glob(
            "/sys/devices/system/cpu/cpu*/thermal_throttle/core_throttle_count"))
        self.processes: dict[str, Any] | None = None
        self.network: dict[str, Any] | None = None
        self.latest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        psutil.cpu_percent(percpu=True)  # prime the per-core counters

    # -- slow, once -----------------------------------------------------------------------
    def load_cpu_info(self) -> dict[str, Any]:
        """CPU model and features via py-cpuinfo (about a second: run it once, off-loop)."""
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        self.cpu_info = {"brand": info.get("brand_raw"), "arch": info.get("arch"),
                         "bits": info.get("bits"), "vendor": info.get("vendor_id_raw"),
                         "hz_advertised": info.get("hz_advertised_friendly"),
                         "features": sorted(info.get("flags", []))}
        return self.cpu_info

    # -- fast path ------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """One full sample (without the process sweep); becomes ``latest``."""
        missing: dict[str, str] = {}
        snap: dict[str, Any] = {"ts": self.clock.now()}
        snap["cpu"] = self._cpu(missing)
        snap["memory"] = self._memory()
        if snap["memory"]["swap"]["percent"] is None:
            missing["swap.percent"] = "no swap configured"
        snap["gpu"] = self._gpu(missing)
        snap["disks"] = self._disks()
        snap["io"] = self._io(missing)
        snap["network_probe"] = self.network
        if self.network is None:
            missing["network_probe"] = "not probed yet"
        snap["processes"] = self.processes
        if self.processes is None:
            missing["processes"] = "not swept yet"
        snap["unavailable"] = missing
        with self._lock:
            self.latest = snap
        return snap

    def _cpu(self, missing: dict[str, str]) -> dict[str, Any]:
        per_core = psutil.cpu_percent(percpu=True)
        load = psutil.getloadavg()
        freq = psutil.cpu_freq()
        out = {"percent": round(sum(per_core) / len(per_core), 2), "per_core": per_core,
               "count_logical": psutil.cpu_count(), "count_physical": psutil.cpu_count(False),
               "load": {"1m": load[0], "5m": load[1], "15m": load[2]},
               "frequency_mhz": {"current": freq.current if freq else None,
                                 "max": freq.max if freq and freq.max else None},
               "model": self.cpu_info, "temperature_c": self._temperature(missing),
               "throttle_count": self._throttling(missing)}
        if freq is None:
            missing["cpu.frequency_mhz"] = "not reported by the platform"
        elif not freq.max:
            missing["cpu.frequency_mhz.max"] = "not reported by the platform"
        if self.cpu_info is None:
            missing["cpu.model"] = (self.cpu_info_error
                                    or "not read yet (py-cpuinfo runs once, "
                                       "health.sampling.startup_delay_seconds after start)")
        return out

    @staticmethod
    def _temperature(missing: dict[str, str]) -> dict[str, float] | None:
        reader = getattr(psutil, "sensors_temperatures", None)
        temps = reader() if reader else {}
        if not temps:
            missing["cpu.temperature_c"] = "no sensors"
            return None
        return {f"{chip}/{t.label or i}": t.current
                for chip, entries in temps.items() for i, t in enumerate(entries)}

    def _throttling(self, missing: dict[str, str]) -> int | None:
        if not self._throttle_files:
            missing["cpu.throttle_count"] = "not reported by the platform (no thermal_throttle)"
            return None
        return sum(int(Path(f).read_text().strip() or 0) for f in self._throttle_files)

    @staticmethod
    def _memory() -> dict[str, Any]:
        vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        return {"ram": {"percent": vm.percent, "total_mb": vm.total / 2**20,
                        "used_mb": (vm.total - vm.available) / 2**20,
                        "available_mb": vm.available / 2**20},
                "swap": {"percent": sw.percent if sw.total else None,
                         "total_mb": sw.total / 2**20, "used_mb": sw.used / 2**20}}

    def _gpu(self, missing: dict[str, str]) -> dict[str, Any]:
        g = self.gpu.read()
        if g["devices"] is None:
            missing["gpu"] = g["reason"]
        return g

    @staticmethod
    def _disks() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            if part.device in seen:
                continue
            seen.add(part.device)
            try:
                u = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue
            out[part.mountpoint] = {"device": part.device, "fstype": part.fstype,
                                    "percent": u.percent, "total_gb": u.total / 2**30,
                                    "free_gb": u.free / 2**30}
        return out

    def _io(self, missing: dict[str, str]) -> dict[str, Any]:
        now = time.monotonic()
        disk = psutil.disk_io_counters()
        nics = {k: v for k, v in psutil.net_io_counters(pernic=True).items() if k != "lo"}
        prev, self._prev_io = self._prev_io, (now, disk, nics)
        if prev is None or now - prev[0] <= 0:
            missing["io"] = "rates need two samples"
            return {"disk": None, "network": None}
        dt = now - prev[0]
        return {"disk": _disk_rates(prev[1], disk, dt, missing),
                "network": {nic: _nic_rates(prev[2][nic], c, dt)
                            for nic, c in nics.items() if nic in prev[2]}}

    # -- slow paths -----------------------------------------------------------------------
    def sample_processes(self, top: int) -> dict[str, Any]:
        """Top ``top`` processes by CPU and by memory (about ten times a full sample)."""
        procs = []
        for p in psutil.process_iter(["pid", "name", "cpu_percent", "memory_info"]):
            mi = p.info.get("memory_info")
            procs.append({"pid": p.info["pid"], "name": p.info.get("name"),
                          "cpu_percent": p.info.get("cpu_percent") or 0.0,
                          "rss_mb": round(mi.rss / 2**20, 1) if mi else None})
        self.processes = {
            "ts": self.clock.now(), "count": len(procs),
            "by_cpu": sorted(procs, key=lambda p: -p["cpu_percent"])[:top],
            "by_memory": sorted(procs, key=lambda p: -(p["rss_mb"] or 0))[:top]}
        return self.processes

    async def probe_network(self, targets: list[str], *, timeout: float,
                            attempts: int) -> dict[str, Any]:
        """TCP connect latency (median, ms) and loss (%) to each ``host:port`` target."""
        self.network = {"ts": self.clock.now(),
                        "targets": await probe_targets(targets, timeout, attempts)}
        return self.network

    # -- the specification's methods -------------------------------------------------------
    def get_current_metrics(self) -> dict[str, Any]:
        """The latest snapshot (samples once if there is none yet)."""
        with self._lock:
            latest = self.latest
        return latest if latest is not None else self.sample()

    def is_healthy(self, thresholds: dict[str, float]) -> bool:
        """CPU, RAM and disk (every mount) below the policy thresholds."""
        return not self.problems(thresholds)

    def problems(self, thresholds: dict[str, float]) -> list[dict[str, Any]]:
        """Every resource at or above its threshold: ``{resource, metric, value, threshold}``."""
        usage = resource_usage(self.get_current_metrics())
        out = []
        for res, key in _RESOURCE_THRESHOLD.items():
            for metric, value in usage.get(res, {}).items():
                if value is not None and value >= thresholds[key]:
                    out.append({"resource": res, "metric": metric, "value": value,
                                "threshold": thresholds[key]})
        return out

    def get_health_score(self, thresholds: dict[str, float], score: dict[str, Any]
                         ) -> float | None:
        """0–100 from resource use against thresholds (formula in the module docstring);
        None when no weighted resource was measured (nothing measured is not healthy)."""
        usage = resource_usage(self.get_current_metrics())
        total = weight = 0.0
        for res, key in _RESOURCE_THRESHOLD.items():
            values = [v for v in usage.get(res, {}).values() if v is not None]
            w = float(score["weights"].get(res, 0.0))
            if not values or w <= 0:
                continue
            total += w * usage_score(max(values), thresholds[key], score["knee"])
            weight += w
        return round(total / weight, 2) if weight else None

    @staticmethod
    def detect_anomaly(history: list[float], sigma: float) -> dict[str, Any]:
        """Is the last value more than ``sigma`` standard deviations from the ones before?"""
        if len(history) < 3:
            return {"anomalous": False, "z": None, "reason": "fewer than 3 samples"}
        past, last = history[:-1], history[-1]
        mean, sd = statistics.fmean(past), statistics.pstdev(past)
        if sd == 0:
            return {"anomalous": last != mean, "z": None if last == mean else float("inf"),
                    "mean": mean, "std": 0.0}
        z = (last - mean) / sd
        return {"anomalous": abs(z) > sigma, "z": z, "mean": mean, "std": sd}

    def flat(self, snap: dict[str, Any] | None = None) -> list[tuple[str, dict[str, str], float]]:
        """Numeric readings as ``(name, labels, value)`` for the time-series store."""
        return flatten(snap or self.get_current_metrics())

    def close(self) -> None:
        self.gpu.close()


def _disk_rates(a: Any, b: Any, dt: float, missing: dict[str, str]) -> dict[str, float] | None:
    if a is None or b is None:
        missing["io.disk"] = "no disk counters on this platform"
        return None
    return {"read_bps": (b.read_bytes - a.read_bytes) / dt,
            "write_bps": (b.write_bytes - a.write_bytes) / dt,
            "read_iops": (b.read_count - a.read_count) / dt,
            "write_iops": (b.write_count - a.write_count) / dt}


def _nic_rates(a: Any, b: Any, dt: float) -> dict[str, float]:
    return {"rx_bps": (b.bytes_recv - a.bytes_recv) / dt, "tx_bps": (b.bytes_sent - a.bytes_sent) / dt,
            "errors_per_s": (b.errin + b.errout - a.errin - a.errout) / dt,
            "drops_per_s": (b.dropin + b.dropout - a.dropin - a.dropout) / dt}
