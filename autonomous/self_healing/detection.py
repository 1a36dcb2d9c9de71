"""Detection: events and observations → :class:`ErrorReport` values.

Sources: an unexpected process exit (``service.exited``), a liveness probe crossing its
failure threshold (``service.unhealthy``), readiness lost while a declared dependency is down
(``service.not_ready``), the service breaker opening on slow, erroring or unanswered probes
(``service.probe`` feeds ``svc:<service>``), and RSS above ``resources.memory_mb``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.events import Event
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import CircuitState
from autonomous.self_healing.model import ErrorReport
from autonomous.self_healing.process_intents import ServicesView

__all__ = ["Detector", "ProbeVerdict"]

ProbeVerdict = str  # "opened:<source>" | "closed" | ""

class Detector:
    """``services()``/``supervisor()`` return the facades (or None before they exist);
    ``policy()`` returns the ``healing`` section."""

    def __init__(self, clock: Clock, breakers: BreakerRegistry,
                 services: Callable[[], ServicesView | None],
                 supervisor: Callable[[], Any], policy: Callable[[], dict[str, Any]]) -> None:
        self.clock = clock
        self.breakers = breakers
        self.services = services
        self.supervisor = supervisor
        self.policy = policy
        self.recent: dict[str, deque[dict[str, Any]]] = {}
        self.proven: dict[str, Any] = {}  # service → pid that answered a probe

    def _report(self, service: str, source: str, message: str, **context: Any) -> ErrorReport:
        return ErrorReport(service, source, message, context=context,
                           detected_at=self.clock.now(), detected_mono=self.clock.monotonic())

    # -- events --------------------------------------------------------------------------------
    def from_exit(self, ev: Event) -> ErrorReport | None:
        """An unexpected exit → report (expected stops are not failures)."""
        d = ev.data
        if d.get("expected"):
            return None
        rc = d.get("returncode")
        sig = -rc if isinstance(rc, int) and rc < 0 else None
        how = f"killed by signal {sig}" if sig is not None else f"exited with code {rc}"
        return self._report(d["service"], "exit", f"process {d.get('pid')} {how}",
                            exit_code=rc, signal=sig, pid=d.get("pid"))

    def from_unhealthy(self, ev: Event) -> ErrorReport:
        d = ev.data
        return self._report(d["service"], "unhealthy",
                            f"liveness probe failing {d.get('consecutive_failures')} times: "
                            f"{d.get('error')}", probe_error=d.get("error"), pid=d.get("pid"))

    def from_not_ready(self, ev: Event) -> ErrorReport:
        d = ev.data
        return self._report(d["service"], "not_ready", f"readiness lost: {d.get('error')}",
                            probe_error=d.get("error"), pid=d.get("pid"))

    def feed_probe(self, ev: Event) -> tuple[ProbeVerdict, ErrorReport | None]:
        """Feed one liveness result to the service breaker; report when it opens."""
        d = ev.data
        name = d["service"]
        if d.get("ok"):
            self.proven[name] = d.get("pid")
        elif self.proven.get(name) != d.get("pid"):
            return "", None  # still starting: the liveness threshold judges that, not the breaker
        size = int(self.policy()["detection"]["evidence_probes"])
        window = self.recent.get(name)
        if window is None or window.maxlen != size:  # a policy change resizes it
            window = self.recent[name] = deque(window or (), maxlen=size)
        window.append(d)
        b = self.breakers.service(name)
        before = b.get_state()
        if before is CircuitState.OPEN:
            return "", None
        slow_s = self.policy()["service_breaker"]["slow_call_seconds"]
        latency = d.get("latency_ms")
        slow = bool(d.get("ok") and slow_s is not None and latency is not None
                    and latency / 1000.0 > slow_s)
        if d.get("ok") and not slow:
            b.record_success()
        else:
            b.record_failure()
        after = b.get_state()
        if after is CircuitState.OPEN and before is not CircuitState.OPEN:
            source, msg, ctx = self._why_open(window, slow_s)
            # the process whose probe opened it: a restart asked for it is satisfied at once
            # when the owner already replaced that process (a crash seen by its probes first)
            return f"opened:{source}", self._report(name, source, msg, pid=d.get("pid"), **ctx)
        if after is CircuitState.CLOSED and before is CircuitState.HALF_OPEN:
            return "closed", None
        return "", None

    @staticmethod
    def _why_open(window: deque[dict[str, Any]], slow_s: float | None) \
            -> tuple[str, str, dict[str, Any]]:
        items = list(window)
        errors = [x for x in items if x.get("status_code") and x["status_code"] >= 500]
        slow = [x for x in items if x.get("ok") and slow_s is not None
                and (x.get("latency_ms") or 0) / 1000.0 > slow_s]
        dead = [x for x in items if not x.get("ok") and not x.get("status_code")]
        lat = [x["latency_ms"] for x in items if x.get("latency_ms") is not None]
        ctx: dict[str, Any] = {"probes": len(items), "slow": len(slow), "errors": len(errors),
                               "unanswered": len(dead),
                               "max_latency_ms": max(lat) if lat else None}
        if errors and len(errors) >= max(len(slow), len(dead)):
            last = errors[-1]
            msg = f"{len(errors)} of {len(items)} probes answered HTTP {last['status_code']}"
            return "errors", msg, {**ctx, "status_code": last["status_code"],
                                   "probe_error": last.get("error")}
        if slow and len(slow) >= len(dead):
            return "slow", f"{len(slow)} of {len(items)} probes slower than {slow_s:g}s", ctx
        last_err = dead[-1].get("error") if dead else None
        return "unresponsive", f"{len(dead)} of {len(items)} probes unanswered: {last_err}", \
            {**ctx, "probe_error": last_err}

    # -- periodic checks -----------------------------------------------------------------------
    def memory_reports(self) -> list[ErrorReport]:
        """Running services whose RSS is above their declared ``resources.memory_mb``."""
        if not self.policy()["detection"]["memory_checks"]:
            return []
        svc, sup = self.services(), self.supervisor()
        if svc is None or sup is None:
            return []
        out = []
        for name, spec in svc.specs().items():
            limit = spec.resources.memory_mb
            if limit is None:
                continue
            rss = sup.memory_rss(name)
            if rss is not None and rss / 2**20 > limit:
                mb = round(rss / 2**20, 1)
                out.append(self._report(name, "memory", f"RSS {mb} MB is over the limit of "
                                        f"{limit:g} MB (spec.resources.memory_mb)",
                                        rss_mb=mb, memory_limit_mb=limit,
                                        memory_over_limit=True))
        return out
