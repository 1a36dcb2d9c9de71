"""The recovery strategies, each doing for real what its name says.

Processes belong to the services controller: a strategy never starts, stops or restarts one;
it writes an intent for the owner (:class:`ProcessIntents`: restart_requested, isolate, pause,
use_revision, fallback) and observes the result. Feature flags belong to the features
controller: DEGRADE writes a ``degrade`` intent (:class:`FeatureFlags`) and reads the owner's
result. Every method returns a :class:`StrategyResult` whose
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
from autonomous.feature_flags import FeatureFlags
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.model import RecoveryStrategy as S
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.process_intents import REQUESTER, ProcessIntents, ServicesView
from autonomous.self_healing.verify import HealthCheck
from autonomous.store import Store
from autonomous.supervisor.order import topo_order

__all__ = ["RecoveryStrategies", "topo_order"]


class RecoveryStrategies:
    """``services()`` returns the services facade; ``policy()`` the ``healing`` section."""

    def __init__(self, *, store: Store, bus: EventBus, clock: Clock,
                 services: Callable[[], ServicesView], policy: Callable[[], dict[str, Any]],
                 check: HealthCheck, alerts: HumanAlerts, processes: ProcessIntents,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.services = services
        self.policy = policy
        self.check = check
        self.alerts = alerts
        self.processes = processes
        self.flags = FeatureFlags(store, clock, bus)  # DEGRADE asks the flags' owner
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
        if not (self.services().observed().get(name) or {}).get("running"):
            return StrategyResult(S.RETRY, False, f"{name} is not running: nothing to "
                                  "re-check", {"attempts": 0}, applicable=False)

        async def once() -> bool:
            ok, msg = await self.check.probe(name)
            if not ok:
                raise RuntimeError(msg)
            return True

        ok, attempts, last = await self.retry_with_backoff(once)
        msg = (f"healthy again after {attempts} check(s)" if ok else
               f"still failing after {attempts} check(s): {last}")
        # RETRY acts on nothing: a failed re-check says the fault is not a passing glitch,
        # not that a heal of the service failed.
        return StrategyResult(S.RETRY, ok, msg, {"attempts": attempts}, applicable=ok)

    # -- RESTART ---------------------------------------------------------------------------------
    async def restart_service(self, name: str, reason: str, *, pid: int | None = None,
                              incident: str | None = None) -> StrategyResult:
        """Ask the services controller (the owner of the process) to restart process ``pid``
        (default: the one running now), then wait until a new process is healthy. A process
        already gone — the owner restarted it after its exit — is not restarted again."""
        old_pid = pid if pid is not None else (self.services().observed().get(name)
                                               or {}).get("pid")
        intent = self.processes.restart(name, old_pid, reason, incident=incident)
        verdict = await self.check.verify_healthy(name, not_pid=old_pid)
        return StrategyResult(S.RESTART_SERVICE, verdict.ok,
                              f"restarted: {verdict.message}" if verdict.ok else verdict.message,
                              {"old_pid": old_pid, "pid": verdict.pid, "intent": intent.id,
                               "healthy_after_s": round(verdict.elapsed_s, 3)})

    async def wait_started(self, name: str, *, not_pid: int | None = None) -> int | None:
        """Wake the services controller and wait for it to run ``name``; the new pid."""
        self.processes.trigger()
        wait = self.policy()["verify"]["exit_restart_wait_seconds"]
        return await self.check.wait_running(name, wait, not_pid=not_pid)

    async def restart_all(self, reason: str, *, incident: str | None = None) -> StrategyResult:
        """Restart every declared service in dependency order, each verified healthy."""
        svc = self.services()
        order = topo_order(svc.specs())
        done: list[str] = []
        for name in order:
            old = (svc.observed().get(name) or {}).get("pid")
            self.processes.restart(name, old, reason, incident=incident)
            verdict = await self.check.verify_healthy(name, not_pid=old)
            if not verdict.ok:
                return StrategyResult(S.RESTART_ALL, False, f"{name}: {verdict.message}",
                                      {"order": order, "restarted": done})
            done.append(name)
        return StrategyResult(S.RESTART_ALL, True, f"restarted {', '.join(order)} in "
                              "dependency order", {"order": order, "restarted": done})

    # -- ROLLBACK ----------------------------------------------------------------------------------
    async def rollback_to_version(self, name: str, reason: str, *,
                                  incident: str | None = None) -> StrategyResult:
        """Ask for the last known-good revision instead of the current one; wait until
        healthy. Not applicable when no other revision ever proved healthy."""
        svc = self.services()
        old = (svc.observed().get(name) or {}).get("pid")
        good = [r for r in svc.revisions(name) if r.get("known_good") and not r.get("blocked")
                and r.get("spec_hash") != self.processes._hash(name)]
        if not good:
            return StrategyResult(S.ROLLBACK, False, f"service {name!r} has no known-good "
                                  "revision to roll back to", applicable=False)
        intent = self.processes.use_revision(name, reason, incident=incident)
        verdict = await self.check.verify_healthy(name, not_pid=old)
        to = good[0]["spec_hash"]
        return StrategyResult(S.ROLLBACK, verdict.ok,
                              f"rolled back to revision {to}: {verdict.message}",
                              {"service": name, "blocked": intent.params.get("from"), "to": to,
                               "intent": intent.id, "pid": verdict.pid})

    # -- FALLBACK ------------------------------------------------------------------------------------
    async def activate_fallback(self, name: str, reason: str, *,
                                incident: str | None = None) -> StrategyResult:
        """Ask for traffic of ``name`` to go to its declared fallback (a service or a URL)
        once the fallback answers: a ``fallback`` intent the gateway reconciles. The intent
        is not a heal: the strategy is ``ok`` only once the front (the service's own URL, as
        clients reach it) answers healthy."""
        svc = self.services()
        spec = svc.specs().get(name)
        fb = spec.fallback if spec is not None else None
        if fb is None or not (fb.service or fb.url):
            return StrategyResult(S.FALLBACK, False, f"{name} declares no spec.fallback",
                                  applicable=False)
        url: str | None
        if fb.service:
            target: str = fb.service
            if not (svc.observed().get(target) or {}).get("running"):
                await self.wait_started(target)
            verdict = await self.check.verify_healthy(target)
            ok, msg = verdict.ok, verdict.message
            url = self.check.health_url(svc.specs().get(target))
        else:
            target = url = str(fb.url)
            ok, msg, _, _ = await self.check.get(target, self.policy()["detection"]
                                                 ["probe_timeout_seconds"])
        if not ok:
            return StrategyResult(S.FALLBACK, False, f"fallback {target} is not healthy: {msg}")
        intent = self.processes.fallback(name, target, url, reason, incident=incident)
        route = {"service": name, "target": target, "url": url, "since": self.clock.now(),
                 "reason": reason, "intent": intent.id}
        self.bus.publish("service.fallback", active=True, **route)
        front_ok, front = await self._front_answers(name)
        if not front_ok:
            return StrategyResult(S.FALLBACK, False, f"fallback to {target} requested (intent "
                                  f"{intent.id}); the front still answers {front}: not healed",
                                  {**route, "front": front}, applicable=False)
        return StrategyResult(S.FALLBACK, True, f"traffic for {name} goes to {target}; the "
                              f"front answers {front}", {**route, "front": front})

    async def _front_answers(self, name: str) -> tuple[bool, str]:
        """Poll the front as clients reach it until it answers healthy (or the verify
        timeout): the gateway's front port when the Service declares ``spec.traffic`` (the
        gateway owner switches it on the intent), else the service's own probe."""
        spec = self.services().specs().get(name)
        traffic = getattr(spec, "traffic", None) if spec is not None else None
        if spec is None or traffic is None or spec.health is None:
            return await self.check.probe(name)
        v = self.policy()["verify"]
        url = f"http://127.0.0.1:{traffic.port}{spec.health.path}"
        deadline = self.clock.monotonic() + v["timeout_seconds"]
        while True:
            ok, msg, _, _ = await self.check.get(url, min(
                self.policy()["detection"]["probe_timeout_seconds"],
                spec.health.timeout_seconds))
            if ok or self.clock.monotonic() >= deadline:
                return ok, f"{msg} at {url}"
            await self.clock.sleep(v["poll_seconds"])

    def deactivate_fallback(self, name: str) -> bool:
        """Route back to the service itself; True if a fallback was active."""
        if not self.processes.clear_fallback(name, "recovered: route back to the service"):
            return False
        self.bus.publish("service.fallback", active=False, service=name)
        return True

    # -- DEGRADE -------------------------------------------------------------------------------------
    async def enter_degraded_mode(self, name: str, reason: str, *,
                                  incident: str | None = None) -> StrategyResult:
        """Ask the owner of feature flags (``controllers/features.py``) to turn the service's
        non-core features off — a ``degrade`` intent — and verify from the owner's result that
        they are off. The intent stays until ``exit_degraded_mode`` releases it."""
        spec = self.services().specs().get(name)
        if spec is None or spec.features is None or spec.port is None:
            return StrategyResult(S.DEGRADE, False, f"{name} declares no spec.features",
                                  applicable=False)
        url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
        intent = self.flags.degrade(name, requester=REQUESTER, reason=reason, incident=incident,
                                    decision=self.processes.decision_of(incident))
        v = self.policy()["verify"]
        done = await self.flags.wait_applied(intent, v["timeout_seconds"], v["poll_seconds"])
        if done.off is None:
            self.flags.release(name, requester=REQUESTER, reason=f"not applied: {done.error}")
            return StrategyResult(S.DEGRADE, False, f"feature endpoint {url}: {done.error}",
                                  {"intent": intent.id}, applicable=False)
        flags = (self.flags.service_state(name) or {}).get("flags") or {}
        return StrategyResult(S.DEGRADE, True, f"non-core features off: {done.off or 'none'}; "
                              f"kept: {sorted(f for f, on in flags.items() if on)}",
                              {"previous": {**flags, **{f: True for f in done.off}},
                               "turned_off": done.off, "url": url, "intent": intent.id})

    async def exit_degraded_mode(self, name: str, previous: dict[str, bool]) -> bool:
        """Release healing's degrade intent on ``name``; True once the owner turned back on
        what it held off for it (``previous``: the flags before DEGRADE, kept for the record)."""
        released = [i.id for i in self.flags.held_by(REQUESTER) if i.service == name]
        self.flags.release(name, requester=REQUESTER, reason="recovered: full service restored")
        v = self.policy()["verify"]
        why = await self.flags.wait_restored(name, released, v["timeout_seconds"],
                                             v["poll_seconds"])
        return why is None

    # -- ISOLATE ---------------------------------------------------------------------------------------
    async def isolate_component(self, name: str, reason: str, *,
                                incident: str | None = None) -> StrategyResult:
        """Ask the services controller to keep the service stopped (an ``isolate`` intent):
        it is not started again until the intent is released (a human, a successful slow
        retry) or a new desired revision of the service arrives."""
        intent = self.processes.isolate(name, f"isolated by self-healing: {reason}",
                                        incident=incident)
        stopped = await self.check.wait_stopped(name, self.policy()["verify"]["timeout_seconds"])
        return StrategyResult(S.ISOLATE, stopped, "stopped and isolated" if stopped
                              else "still running after the isolation was asked for",
                              {"isolated": True, "intent": intent.id})

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
