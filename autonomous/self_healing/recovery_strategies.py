"""The recovery strategies, each doing for real what its name says.

Services are acted on through the services facade (``ctx.subsystems["services"]``: restart,
start, stop, set_override, rollback) — never by signalling processes directly — so the services
controller keeps one consistent view. Every method returns a :class:`StrategyResult` whose
``ok`` means the effect was verified (the service answers its health check again, the
fallback answers, the features really are off), not merely that a command was sent.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from autonomous.core.backoff import Backoff, BackoffSpec
from autonomous.core.clock import Clock
from autonomous.core.events import EventBus
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.model import RecoveryStrategy as S
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.verify import HealthCheck
from autonomous.store import Store
from autonomous.supervisor.order import topo_order

__all__ = ["RecoveryStrategies", "topo_order"]


class RecoveryStrategies:
    """``services()`` returns the services facade; ``policy()`` the ``healing`` section."""

    def __init__(self, *, store: Store, bus: EventBus, clock: Clock,
                 services: Callable[[], Any], policy: Callable[[], dict[str, Any]],
                 check: HealthCheck, alerts: HumanAlerts,
                 trigger: Callable[[], Any] = lambda: None,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.services = services
        self.policy = policy
        self.check = check
        self.alerts = alerts
        self.trigger = trigger
        self.rng = rng or random.Random()

    # -- RETRY ---------------------------------------------------------------------------------
    async def retry_with_backoff(self, operation: Callable[[], Awaitable[Any]], *,
                                 backoff: BackoffSpec | None = None,
                                 max_attempts: int | None = None) -> tuple[bool, int, str]:
        """Call ``operation`` until it returns a truthy value, waiting an exponential,
        jittered, capped delay between tries, within the retry budget. Returns
        ``(ok, attempts, last error)``; exceptions from ``operation`` count as failures."""
        p = self.policy()["retry"]
        spec = backoff or BackoffSpec.from_policy(p["backoff"])
        budget = max_attempts or p["max_attempts"]
        b = Backoff(spec, rng=self.rng)
        last = ""
        for attempt in range(1, budget + 1):
            try:
                result = await operation()
                if result:
                    return True, attempt, ""
                last = f"attempt {attempt} returned {result!r}"
            except Exception as exc:  # noqa: BLE001 - a failed try is what is being retried
                last = f"attempt {attempt}: {type(exc).__name__}: {exc}"
            if attempt < budget:
                await self.clock.sleep(b.record_failure())
        return False, budget, last

    async def retry(self, name: str, reason: str) -> StrategyResult:
        """RETRY for a service: re-check its health with backoff (a glitch that passes)."""
        async def once() -> bool:
            ok, msg = await self.check.probe(name)
            if not ok:
                raise RuntimeError(msg)
            return True

        ok, attempts, last = await self.retry_with_backoff(once)
        msg = (f"healthy again after {attempts} check(s)" if ok else
               f"still failing after {attempts} check(s): {last}")
        return StrategyResult(S.RETRY, ok, msg, {"attempts": attempts})

    # -- RESTART ---------------------------------------------------------------------------------
    async def restart_service(self, name: str, reason: str) -> StrategyResult:
        """Graceful stop (SIGTERM), forced after the grace period (SIGKILL), start, wait until
        healthy. The start is left to the services controller (it starts a stopped or exited
        service at once); the healer starts it itself only if that did not happen within
        ``exit_restart_wait_seconds`` — so a service is never started twice."""
        svc = self.services()
        old_pid = (svc.observed().get(name) or {}).get("pid")
        await self.stop_then_start(name, reason)
        verdict = await self.check.verify_healthy(name, not_pid=old_pid)
        return StrategyResult(S.RESTART_SERVICE, verdict.ok,
                              f"restarted: {verdict.message}" if verdict.ok else verdict.message,
                              {"old_pid": old_pid, "pid": verdict.pid,
                               "healthy_after_s": round(verdict.elapsed_s, 3)})

    async def stop_then_start(self, name: str, reason: str) -> int | None:
        """Stop ``name`` if it runs, then make sure a new process runs; the new pid."""
        svc = self.services()
        obs = svc.observed().get(name) or {}
        if obs.get("running"):
            await svc.stop(name, reason)
        return await self.ensure_started(name, reason, not_pid=obs.get("pid"))

    async def ensure_started(self, name: str, reason: str, *,
                             not_pid: int | None = None) -> int | None:
        """Let the services controller start ``name``; start it only if it does not."""
        self.trigger()
        wait = self.policy()["verify"]["exit_restart_wait_seconds"]
        pid = await self.check.wait_running(name, wait, not_pid=not_pid)
        if pid is None:
            try:
                await self.services().start(name, reason)
            except RuntimeError:
                pass  # started meanwhile by the services controller
            pid = (self.services().observed().get(name) or {}).get("pid")
        return pid

    async def restart_all(self, reason: str) -> StrategyResult:
        """Restart every declared service in dependency order, each verified healthy."""
        svc = self.services()
        order = topo_order(svc.specs())
        done: list[str] = []
        for name in order:
            old = (svc.observed().get(name) or {}).get("pid")
            await self.stop_then_start(name, reason)
            verdict = await self.check.verify_healthy(name, not_pid=old)
            if not verdict.ok:
                return StrategyResult(S.RESTART_ALL, False, f"{name}: {verdict.message}",
                                      {"order": order, "restarted": done})
            done.append(name)
        return StrategyResult(S.RESTART_ALL, True, f"restarted {', '.join(order)} in "
                              "dependency order", {"order": order, "restarted": done})

    # -- ROLLBACK ----------------------------------------------------------------------------------
    async def rollback_to_version(self, name: str, reason: str,
                                  trigger: Callable[[], Any] | None = None) -> StrategyResult:
        """Block the current revision, run the last known-good one, wait until healthy."""
        svc = self.services()
        old = (svc.observed().get(name) or {}).get("pid")
        try:
            info = svc.rollback(name, reason)
        except LookupError as exc:
            return StrategyResult(S.ROLLBACK, False, str(exc))
        if trigger is not None:
            trigger()
        verdict = await self.check.verify_healthy(name, not_pid=old)
        return StrategyResult(S.ROLLBACK, verdict.ok,
                              f"rolled back to revision {info['to']}: {verdict.message}",
                              {**info, "pid": verdict.pid})

    # -- FALLBACK ------------------------------------------------------------------------------------
    async def activate_fallback(self, name: str, reason: str) -> StrategyResult:
        """Route ``name`` to its declared fallback (a service, started if needed, or a URL)
        once the fallback answers; the route is kept in the store and announced as
        ``service.fallback`` for clients and the telemetry hub."""
        svc = self.services()
        spec = svc.specs().get(name)
        fb = spec.fallback if spec is not None else None
        if fb is None or not (fb.service or fb.url):
            return StrategyResult(S.FALLBACK, False, f"{name} declares no spec.fallback")
        if fb.service:
            target = fb.service
            if not (svc.observed().get(target) or {}).get("running"):
                await self.ensure_started(target, f"fallback for {name}: {reason}")
            verdict = await self.check.verify_healthy(target)
            ok, msg = verdict.ok, verdict.message
            url = self.check.health_url(svc.specs().get(target))
        else:
            target = url = fb.url
            ok, msg, _, _ = await self.check.get(fb.url, self.policy()["detection"]
                                                 ["probe_timeout_seconds"])
        if not ok:
            return StrategyResult(S.FALLBACK, False, f"fallback {target} is not healthy: {msg}")
        route = {"service": name, "target": target, "url": url, "since": self.clock.now(),
                 "reason": reason}
        self.store.kv_set(f"healing.route.{name}", route)
        self.bus.publish("service.fallback", active=True, **route)
        return StrategyResult(S.FALLBACK, True, f"traffic for {name} goes to {target}", route)

    def deactivate_fallback(self, name: str) -> bool:
        """Route back to the service itself; True if a fallback was active."""
        route = self.store.kv_get(f"healing.route.{name}")
        if not route:
            return False
        self.store.kv_set(f"healing.route.{name}", None)
        self.bus.publish("service.fallback", active=False, service=name,
                         target=route.get("target"))
        return True

    # -- DEGRADE -------------------------------------------------------------------------------------
    async def enter_degraded_mode(self, name: str, reason: str) -> StrategyResult:
        """Turn the service's non-core features off through its feature-flag endpoint
        (``spec.features``); the previous flags are returned for ``exit_degraded_mode``."""
        spec = self.services().specs().get(name)
        if spec is None or spec.features is None or spec.port is None:
            return StrategyResult(S.DEGRADE, False, f"{name} declares no spec.features")
        url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
        try:
            before = await self._features(url)
            off = {f: False for f, on in before.items() if on and f not in spec.features.core}
            after = await self._put_features(url, off) if off else before
        except (OSError, ValueError, RuntimeError) as exc:
            return StrategyResult(S.DEGRADE, False, f"feature endpoint {url}: {exc}")
        still_on = [f for f in off if after.get(f)]
        if still_on:
            return StrategyResult(S.DEGRADE, False, f"features still on: {still_on}")
        return StrategyResult(S.DEGRADE, True, f"non-core features off: {sorted(off) or 'none'}; "
                              f"kept: {sorted(f for f, on in after.items() if on)}",
                              {"previous": before, "turned_off": sorted(off), "url": url})

    async def exit_degraded_mode(self, name: str, previous: dict[str, bool]) -> bool:
        """Put back the flags saved by ``enter_degraded_mode``."""
        spec = self.services().specs().get(name)
        if spec is None or spec.features is None or spec.port is None:
            return False
        url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
        try:
            current = await self._features(url)
            await self._put_features(url, {f: v for f, v in previous.items() if f in current})
        except (OSError, ValueError, RuntimeError):
            return False
        return True

    async def _features(self, url: str) -> dict[str, bool]:
        resp = await self.check.client.get(url, timeout=self._timeout())
        if resp.status_code != 200:
            raise RuntimeError(f"GET answered HTTP {resp.status_code}")
        body = resp.json()
        flags = body.get("features", body) if isinstance(body, dict) else None
        if not isinstance(flags, dict):
            raise ValueError(f"GET answered {body!r}, not a feature map")  # noqa: TRY004
        return {str(k): bool(v) for k, v in flags.items()}

    async def _put_features(self, url: str, flags: dict[str, bool]) -> dict[str, bool]:
        resp = await self.check.client.put(url, json={"features": flags}, timeout=self._timeout())
        if resp.status_code >= 300:
            raise RuntimeError(f"PUT answered HTTP {resp.status_code}: {resp.text[:200]}")
        return await self._features(url)

    def _timeout(self) -> float:
        return float(self.policy()["detection"]["probe_timeout_seconds"]) * 5

    # -- ISOLATE ---------------------------------------------------------------------------------------
    async def isolate_component(self, name: str, reason: str) -> StrategyResult:
        """Stop the service and mark it isolated: the services controller will not start it
        again until the isolation is cleared (by a human or a successful slow retry)."""
        svc = self.services()
        svc.set_override(name, isolated=True, reason=f"isolated by self-healing: {reason}")
        await svc.stop(name, f"isolated: {reason}")
        running = bool((svc.observed().get(name) or {}).get("running"))
        return StrategyResult(S.ISOLATE, not running, "stopped and isolated" if not running
                              else "still running after stop", {"isolated": True})

    # -- ALERT_HUMAN -----------------------------------------------------------------------------------
    async def alert_human(self, name: str, reason: str, context: dict[str, Any]) \
            -> StrategyResult:
        """Publish ``alert.human`` with the full context and keep it in the store."""
        alert = self.alerts.raise_alert(name, reason, context)
        if alert is None:
            return StrategyResult(S.ALERT_HUMAN, True, "a human was already alerted for this "
                                  "recently (deduplicated)", {"deduplicated": True})
        return StrategyResult(S.ALERT_HUMAN, True, f"human alerted ({alert['id']})",
                              {"alert": alert["id"]})
