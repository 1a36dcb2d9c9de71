"""Resource throttling: per-priority rate limits (GCRA, exact retry-after), CPU / RAM / GPU
gates from live readings, and an adaptive in-flight limit (AIMD).

All limits come from the ``resilience`` policy section (``update_policy`` on every policy
refresh). The resource reading is a port: ``read_system_resources`` (psutil, NVML when a GPU
is present) in production, any callable returning a :class:`ResourceReading` in tests.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autonomous.core.clock import Clock
from autonomous.core.stats import percentiles
from autonomous.resilience.priority_queue import Priority

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = [
    "Gcra",
    "ResourceReading",
    "ResourceThrottler",
    "ThrottleDecision",
    "latency_target_ms",
    "read_system_resources",
]

_RESOURCES = ("cpu_percent", "ram_percent", "gpu_percent")


@dataclass(frozen=True)
class ResourceReading:
    """Percent use per resource; None with a reason in ``missing`` when unavailable."""

    cpu_percent: float | None
    ram_percent: float | None
    gpu_percent: float | None
    missing: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        return getattr(self, name)


_NVML: dict[str, Any] = {}  # "error" once NVML failed to initialise in this process


def _gpu_percent() -> tuple[float | None, str | None]:
    if "error" in _NVML:
        return None, _NVML["error"]
    try:
        import pynvml

        if not _NVML.get("ready"):
            pynvml.nvmlInit()
            _NVML["ready"] = True
        count = pynvml.nvmlDeviceGetCount()
        utils = [pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(i)).gpu
                 for i in range(count)]
    except Exception as exc:  # noqa: BLE001 - any NVML failure means "no GPU reading"
        _NVML["error"] = f"no NVIDIA GPU reading: {type(exc).__name__}"
        return None, _NVML["error"]
    return (float(max(utils)), None) if utils else (None, "NVML reports no GPU")


def read_system_resources() -> ResourceReading:
    """CPU (since the previous call) and RAM from psutil; GPU utilisation from NVML if any
    (an NVML that failed to start is not retried in this process)."""
    import psutil

    gpu, why = _gpu_percent()
    return ResourceReading(float(psutil.cpu_percent(interval=None)),
                           float(psutil.virtual_memory().percent), gpu,
                           {"gpu_percent": why} if why else {})


class Gcra:
    """Generic cell rate algorithm: ``rate`` per second with ``burst`` back to back.

    ``check(now)`` returns 0.0 and records the request when it conforms, otherwise the exact
    number of seconds after which it would conform (and records nothing).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.configure(rate, burst)
        self._tat = -math.inf  # theoretical arrival time

    def configure(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.interval = 1.0 / rate
        self.tolerance = self.interval * (burst - 1)

    def check(self, now: float) -> float:
        tat = max(self._tat, now)
        allow_at = tat - self.tolerance
        if now < allow_at:
            return allow_at - now
        self._tat = tat + self.interval
        return 0.0


@dataclass(frozen=True)
class ThrottleDecision:
    throttle: bool
    reason: str = ""
    kind: str | None = None  # "rate" | "cpu_percent" | "ram_percent" | "gpu_percent"
    retry_after: float | None = None


def latency_target_ms(aimd: dict[str, Any], baseline_seconds: float | None) -> float:
    """The latency target in force (pure): ``baseline_tolerance`` x the baseline (the unloaded
    p50), at least ``min_target_ms``, at most ``target_latency_ms``; the ceiling itself while
    no baseline is known."""
    cap = float(aimd["target_latency_ms"])
    if baseline_seconds is None:
        return cap
    return min(cap, max(float(aimd["min_target_ms"]),
                        aimd["baseline_tolerance"] * baseline_seconds * 1000.0))


class ResourceThrottler:
    """Rate limits, resource gates and the adaptive in-flight limit. Thread-safe."""

    def __init__(self, policy: dict[str, Any], *, clock: Clock,
                 reader: Callable[[], ResourceReading] = read_system_resources) -> None:
        self.clock = clock
        self.reader = reader
        self._lock = threading.RLock()
        self._rates: dict[Priority, Gcra] = {}
        self.policy: dict[str, Any] = {}
        self.update_policy(policy)
        self.limit = int(policy["concurrency"]["initial"])
        self.in_flight = 0
        self.critical_in_flight = 0  # of in_flight: CRITICAL requests
        self._latencies: deque[float] = deque(maxlen=10_000)
        self._saturated = False
        self._last_adjust = clock.monotonic()
        self._reading: ResourceReading | None = None
        self._smoothed: dict[str, float] = {}
        self._read_at = -math.inf
        self.adjustments: deque[dict[str, Any]] = deque(maxlen=50)
        self._p50s: deque[tuple[float, float]] = deque(maxlen=4096)  # (at, interval p50)
        self.baseline: float | None = None  # seconds: lowest interval p50 in the window
        self.throttled: dict[str, int] = {}

    def update_policy(self, policy: dict[str, Any]) -> None:
        """Apply the ``resilience`` policy section in force (rates keep their state)."""
        with self._lock:
            self.policy = policy
            for p in Priority:
                spec = policy["rate_limits"][p.name]
                if p in self._rates:
                    self._rates[p].configure(spec["per_second"], spec["burst"])
                else:
                    self._rates[p] = Gcra(spec["per_second"], spec["burst"])
            c = policy["concurrency"]
            if hasattr(self, "limit"):
                self.limit = max(c["min"], min(c["max"], self.limit))

    # -- readings --------------------------------------------------------------------------
    def set_reader(self, reader: Callable[[], ResourceReading]) -> None:
        """Swap the resource reader and forget smoothed readings taken with the old one."""
        with self._lock:
            self.reader = reader
            self._read_at = -math.inf
            self._smoothed.clear()

    def reading(self) -> dict[str, float | None]:
        """Smoothed (EWMA) readings, refreshed at most every ``sample_interval_seconds``."""
        gates = self.policy["gates"]
        now = self.clock.monotonic()
        with self._lock:
            if now - self._read_at >= gates["sample_interval_seconds"]:
                dt = now - self._read_at if self._read_at > -math.inf else None
                self._reading = self.reader()
                self._read_at = now
                self._smooth(self._reading, dt, gates["smoothing_seconds"])
            return {r: self._smoothed.get(r) for r in _RESOURCES}

    def _smooth(self, raw: ResourceReading, dt: float | None, tau: float) -> None:
        for r in _RESOURCES:
            v = raw.get(r)
            if v is None:
                self._smoothed.pop(r, None)
                continue
            prev = self._smoothed.get(r)
            if prev is None or dt is None or tau <= 0:
                self._smoothed[r] = v
            else:
                alpha = 1.0 - math.exp(-dt / tau)
                self._smoothed[r] = prev + alpha * (v - prev)

    # -- decisions -------------------------------------------------------------------------
    def should_throttle(self, priority: Priority) -> ThrottleDecision:
        """Shed by resource gate (never CRITICAL) or by the priority's rate limit."""
        gate = self._gate(priority)
        if gate is not None:
            return self._count(gate)
        with self._lock:
            wait = self._rates[priority].check(self.clock.monotonic())
        if wait > 0:
            spec = self.policy["rate_limits"][priority.name]
            return self._count(ThrottleDecision(
                True, f"{priority.name} rate limit {spec['per_second']:g}/s "
                      f"(burst {spec['burst']}) exceeded", "rate", wait))
        return ThrottleDecision(False)

    def _gate(self, priority: Priority) -> ThrottleDecision | None:
        if priority == Priority.CRITICAL:
            return None
        gates = self.policy["gates"]
        readings = self.reading()
        for r in _RESOURCES:
            limit = gates[r][priority.name]
            value = readings.get(r)
            if limit is not None and value is not None and value >= limit:
                return ThrottleDecision(True, f"{r} {value:.1f} >= {limit:g} gate for "
                                        f"{priority.name}", r, gates["retry_after_seconds"])
        return None

    def _count(self, d: ThrottleDecision) -> ThrottleDecision:
        with self._lock:
            self.throttled[d.kind or "?"] = self.throttled.get(d.kind or "?", 0) + 1
        return d

    async def wait_for_resources(self, priority: Priority, timeout: float) -> bool:
        """Wait (on the clock) until no resource gate holds ``priority``; False on timeout."""
        deadline = self.clock.monotonic() + timeout
        step = self.policy["gates"]["sample_interval_seconds"]
        while self._gate(priority) is not None:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return False
            await self.clock.sleep(min(step, left))
        return True

    # -- concurrency -----------------------------------------------------------------------
    def cap(self, priority: Priority | None = None) -> int:
        """In-flight slots ``priority`` may fill: the whole limit for CRITICAL (and None);
        for the others ``limit - concurrency.critical_reserved`` (at least 1), counting only
        non-CRITICAL requests, so the reserved slots stay free for CRITICAL while CRITICAL
        requests in flight do not eat into the others' share."""
        if priority is None or priority == Priority.CRITICAL:
            return self.limit
        return max(1, self.limit - self.policy["concurrency"]["critical_reserved"])

    def _free_for(self, priority: Priority | None) -> bool:
        if self.in_flight >= self.limit:
            return False
        if priority is None or priority == Priority.CRITICAL:
            return True
        return self.in_flight - self.critical_in_flight < self.cap(priority)

    def try_acquire(self, priority: Priority | None = None) -> bool:
        """Take an in-flight slot if one ``priority`` may use is free."""
        with self._lock:
            if self._free_for(priority):
                self._take(priority)
                self._saturated = self._saturated or not self._free_for(priority)
                return True
            self._saturated = True
            return False

    def _take(self, priority: Priority | None) -> None:
        self.in_flight += 1
        if priority == Priority.CRITICAL:
            self.critical_in_flight += 1

    def force_acquire(self, priority: Priority | None = None) -> None:
        """Take a slot for a request the queue granted (the caller checked the limit)."""
        with self._lock:
            self._take(priority)

    def release(self, latency_seconds: float | None, priority: Priority | None = None) -> None:
        """Give a slot back (``priority``: the one it was taken with); record the request's
        latency for AIMD."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if priority == Priority.CRITICAL:
                self.critical_in_flight = max(0, self.critical_in_flight - 1)
            if latency_seconds is not None:
                self._latencies.append(latency_seconds)
        self.adjust_limits_dynamically()

    def has_capacity(self, priority: Priority | None = None) -> bool:
        """Whether a slot ``priority`` may use is free (None: any slot, reserved included)."""
        with self._lock:
            return self._free_for(priority)

    def adjust_limits_dynamically(self, *, force: bool = False) -> dict[str, Any] | None:
        """AIMD on a target that follows the unloaded latency (gradient / Vegas style): every
        ``aimd.interval_seconds``, the interval's p50 joins the baseline window (the baseline
        is the lowest p50 of the last ``baseline_window_seconds``); the limit shrinks by
        ``decrease_factor`` when the interval p50 exceeds :func:`latency_target_ms` or a
        resource gate for LOW is hit, and grows by ``increase`` when healthy and the limit was
        reached (demand exists). Returns the adjustment made, or None."""
        aimd, conc = self.policy["aimd"], self.policy["concurrency"]
        now = self.clock.monotonic()
        with self._lock:
            if not force and now - self._last_adjust < aimd["interval_seconds"]:
                return None
            samples = list(self._latencies)
            if not force and len(samples) < aimd["min_samples"]:
                return None
            self._latencies.clear()
            p50 = percentiles(samples, (50,))["p50"]
            self._observe_baseline(now, p50, aimd["baseline_window_seconds"])
            target = latency_target_ms(aimd, self.baseline)
            old = self.limit
            pressure = self._gate(Priority.LOW)
            slow = p50 is not None and p50 * 1000 > target
            if slow or pressure is not None:
                self.limit = max(conc["min"], int(self.limit * aimd["decrease_factor"]))
                why = pressure.reason if pressure else (
                    f"p50 {(p50 or 0.0) * 1000:.1f} ms > target {target:.1f} ms")
            elif self._saturated:
                self.limit = min(conc["max"], self.limit + aimd["increase"])
                why = f"p50 {(p50 or 0) * 1000:.1f} ms within target {target:.1f} ms and " \
                      "limit reached"
            else:
                why = "limit not reached: unchanged"
            self._saturated = self.in_flight >= self.limit
            self._last_adjust = now
            change = {"at": self.clock.now(), "from": old, "to": self.limit, "reason": why,
                      "samples": len(samples), "target_ms": round(target, 3)}
            if old != self.limit:
                self.adjustments.append(change)
            return change

    def _observe_baseline(self, now: float, p50: float | None, window: float) -> None:
        if p50 is not None:
            self._p50s.append((now, p50))
        while self._p50s and now - self._p50s[0][0] > window:
            self._p50s.popleft()
        self.baseline = min((v for _, v in self._p50s), default=self.baseline)

    def get_stats(self) -> dict[str, Any]:
        """Limits in force, in-flight count, readings, throttle counts and recent changes."""
        with self._lock:
            raw = self._reading
            return {
                "concurrency": {"limit": self.limit, "in_flight": self.in_flight,
                                "critical_in_flight": self.critical_in_flight,
                                "critical_reserved":
                                    self.policy["concurrency"]["critical_reserved"],
                                "min": self.policy["concurrency"]["min"],
                                "max": self.policy["concurrency"]["max"]},
                "rate_limits": self.policy["rate_limits"],
                "gates": {r: self.policy["gates"][r] for r in _RESOURCES},
                "readings": {r: self._smoothed.get(r) for r in _RESOURCES},
                "readings_missing": dict(raw.missing) if raw else {},
                "throttled": dict(self.throttled),
                "adjustments": list(self.adjustments),
                "latency_baseline_ms": None if self.baseline is None else
                round(self.baseline * 1000, 3),
                "latency_target_ms": round(latency_target_ms(self.policy["aimd"],
                                                             self.baseline), 3),
            }


def context_reader(ctx: OperatorContext) -> Callable[[], ResourceReading]:
    """A reader preferring the health monitor's latest snapshot (``ctx.subsystems["health"]``,
    sampled on its own loop) and falling back to ``read_system_resources``."""

    def read() -> ResourceReading:
        health = ctx.subsystems.get("health")
        snap = getattr(getattr(health, "system", None), "latest", None)
        if not snap:
            return read_system_resources()
        try:
            devices = snap["gpu"]["devices"] or []
            gpu = max((d["utilization_percent"] for d in devices
                       if d.get("utilization_percent") is not None), default=None)
            missing = {} if gpu is not None else {"gpu_percent": "health monitor reports no "
                                                                 "GPU utilisation"}
            return ResourceReading(snap["cpu"]["percent"], snap["memory"]["ram"]["percent"],
                                   gpu, missing)
        except (KeyError, TypeError):
            return read_system_resources()

    return read


__all__ += ["context_reader"]
