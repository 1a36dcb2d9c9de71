"""The healing orchestrator: detect → classify → consult memory → choose strategy → execute
behind the service's breaker → verify → record (memory, history, knowledge graph) → notify.

``handle_error`` runs that pipeline for one failure (from the API, another subsystem, or the
detector); ``start_healing_service`` runs the detector on the event bus plus a periodic tick
(memory checks, crash-loop tries, slow retries of isolated services, approvals, restoring
degraded services); ``get_healing_stats`` gives attempts, successes and MTTR per type.

Governance: a strategy's action kind is gated by ``governance.action_mode`` and, in
``governed`` mode, by ``healing.approval_list``; a gated strategy becomes an approval request
(``ctx.approvals``) bound to the generation and resumes once approved. In ``emergency_stop``
only core services are healed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from typing import Any

from autonomous.core.aio import TIMED_OUT, wait_or_timeout
from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.circuit_breaker import CircuitOpenError, CircuitState
from autonomous.self_healing.crashloop import CrashLoop
from autonomous.self_healing.detection import Detector
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.history import HealingHistory
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import (
    STRATEGY_ACTION,
    ErrorReport,
    RecoveryStrategy,
    StrategyResult,
)
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.service_state import ServiceState, StateStore
from autonomous.self_healing.verify import HealthCheck, process_stopped

__all__ = ["HealingOrchestrator"]

log = logging.getLogger("atlas.healing")

S = RecoveryStrategy
_RESTARTS = (S.RESTART_SERVICE, S.RESTART_ALL)


class HealingOrchestrator:
    """The self-healing engine of one operator. ``ctx`` is the OperatorContext."""

    def __init__(self, ctx: Any, *, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        clock, store, bus = ctx.clock, ctx.store, ctx.bus
        self.memory = FailureMemory(store, clock, lambda: self.policy()["memory"])
        self.classifier = ErrorClassifier(store, clock, self.policy)
        self.breakers = BreakerRegistry(store, bus, clock, self.policy)
        self.history = HealingHistory(store, clock, lambda: self.policy()["history_max_rows"])
        self.alerts = HumanAlerts(store, bus, clock, self.policy)
        self.check = HealthCheck(clock, self._services, self.policy)
        self.strategies = RecoveryStrategies(store=store, bus=bus, clock=clock,
                                             services=self._services, policy=self.policy,
                                             check=self.check, alerts=self.alerts,
                                             trigger=lambda: ctx.trigger("services"), rng=rng)
        self.detector = Detector(clock, self.breakers, lambda: ctx.subsystems.get("services"),
                                 lambda: ctx.subsystems.get("supervisor"), self.policy)
        self.state_store = StateStore(store, clock)
        self.states: dict[str, ServiceState] = self.state_store.load()
        self.crashloop = CrashLoop(self)
        self.pending: dict[str, Incident] = {}  # incident id → awaiting approval
        self.crash_incidents: dict[str, Incident] = {}  # service → its crash-loop incident
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self._last_tick = float("-inf")

    # -- plumbing ------------------------------------------------------------------------------
    def policy(self) -> dict[str, Any]:
        """The ``healing`` policy section in force (read on every use)."""
        return self.ctx.policy()["healing"]

    def _services(self) -> Any:
        svc = self.ctx.subsystems.get("services")
        if svc is None:
            raise LookupError("the services subsystem is not running: self-healing acts "
                              "through it (enable the services controller)")
        return svc

    def state(self, name: str) -> ServiceState:
        if name not in self.states:
            self.states[name] = ServiceState(name)
        return self.states[name]

    def save_state(self, st: ServiceState) -> None:
        self.state_store.save(st)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("healing task failed", exc_info=task.exception())

    # -- the pipeline ------------------------------------------------------------------------------
    async def handle_error(self, service: str, error: BaseException | None = None,
                           context: dict[str, Any] | None = None, *, source: str | None = None,
                           strategy: str | None = None, message: str | None = None) \
            -> dict[str, Any]:
        """Heal ``service`` after ``error`` (optional): the whole pipeline; returns the
        incident (history row). ``strategy`` forces the first strategy to try."""
        ctx = dict(context or {})
        src = source or ("exception" if error is not None else "manual")
        msg = message or (f"{type(error).__name__}: {error}" if error is not None
                          else f"healing requested ({src})")
        report = ErrorReport(service, src, msg, error, ctx, self.ctx.clock.now(),
                             self.ctx.clock.monotonic())
        forced = RecoveryStrategy(strategy) if strategy else None
        inc = await self.handle_report(report, forced=forced)
        return inc.row() if inc is not None else {"service": service, "state": "skipped",
                                                   "message": "a heal of this service is "
                                                              "already in progress"}

    async def handle_report(self, report: ErrorReport, *,
                            forced: RecoveryStrategy | None = None) -> Incident | None:
        """Run the pipeline for one detected failure (None if a heal is already running)."""
        st = self.state(report.service)
        if st.busy or (forced is None and self._recently_escalated(st, report)):
            return None
        st.busy = True
        try:
            inc = await self._open(report, forced)
            skip = self._skip_reason(report.service, forced is not None)
            if skip is not None:
                self._finish(inc, "skipped", skip)
                return inc
            await self._run_ladder(inc)
            return inc
        finally:
            st.busy = False

    def _recently_escalated(self, st: ServiceState, report: ErrorReport) -> bool:
        """A human was alerted for this service and it did not recover yet: probe-driven
        reports are not new incidents (exits still count for the restart budget) until
        ``alerts.dedup_seconds`` passed."""
        if st.escalated_at is None or report.source in ("exit", "manual", "exception"):
            return False
        return self.ctx.clock.monotonic() - st.escalated_at < \
            self.policy()["alerts"]["dedup_seconds"]

    async def _open(self, report: ErrorReport, forced: RecoveryStrategy | None) -> Incident:
        evidence = await self._evidence(report)
        cls = self.classifier.classify_error(report.exception, evidence)
        st = self.state(report.service)
        forced = forced or (RecoveryStrategy(st.forced_strategy) if st.forced_strategy
                            else None)
        suggestion = self.memory.suggest_recovery(cls.signature,
                                                  [s.value for s in cls.strategies])
        ladder = self._ladder(cls.strategies, forced, suggestion, evidence, st)
        gen = self.ctx.desired.current
        inc = Incident(report, cls, ladder, self.ctx.governance.mode,
                       gen.number if gen else None, _public(evidence), suggestion=suggestion)
        inc.memory_id = self.memory.record_failure(
            cls.signature, context={**inc.evidence, "message": report.message},
            service=report.service, error_type=cls.error_type.value)
        inc.graph_start(self.ctx.graph)
        self.ctx.bus.publish("healing.detected", incident=inc.id, service=report.service,
                             source=report.source, error_type=cls.error_type.value,
                             severity=cls.severity.value, rule=cls.rule)
        return inc

    async def _evidence(self, report: ErrorReport) -> dict[str, Any]:
        """The context a classification needs: process state, probe, logs, config, deps."""
        name = report.service
        svc = self.ctx.subsystems.get("services")
        ev: dict[str, Any] = {"service": name, "source": report.source,
                              "message": report.message, **report.context}
        if svc is None:
            return ev
        obs = svc.observed().get(name) or {}
        last = obs.get("last_probe") or {}
        ev.setdefault("running", bool(obs.get("running")))
        ev.setdefault("pid", obs.get("pid"))
        ev.setdefault("status_code", last.get("status_code"))
        ev.setdefault("probe_error", last.get("error"))
        ev["stopped"] = process_stopped(obs.get("pid")) if obs.get("running") else False
        ev["log_tail"] = svc.log_tail(name, self.policy()["classification"]["log_tail_lines"])
        ev["config_changed"] = self._config_changed(name, svc)
        with contextlib.suppress(LookupError):
            down = await self.check.dependencies_down(name)
            ev["dependency_down"], ev["dependencies_down"] = bool(down), down
        return ev

    def _config_changed(self, name: str, svc: Any) -> bool:
        """The desired revision never proved healthy while an older one did."""
        from autonomous.supervisor.revisions import spec_hash

        spec = svc.specs().get(name)
        if spec is None:
            return False
        rows = self.ctx.store.query("SELECT spec_hash, known_good, blocked FROM "
                                    "service_revisions WHERE service=?", (name,))
        cur = spec_hash(spec)
        mine = [r for r in rows if r["spec_hash"] == cur]
        good = [r for r in rows if r["spec_hash"] != cur and r["known_good"] and not r["blocked"]]
        return bool(mine and not mine[0]["known_good"] and good)

    def _ladder(self, ladder: tuple[RecoveryStrategy, ...], forced: RecoveryStrategy | None,
                suggestion: dict[str, Any] | None, ev: dict[str, Any],
                st: ServiceState) -> list[RecoveryStrategy]:
        """Order: forced, memory's best-measured, then the rule's ladder; without what
        cannot apply (restarts while a dependency is down, a mitigation already active)."""
        out: list[RecoveryStrategy] = []
        if forced is not None:
            out.append(forced)
        if suggestion is not None and forced is None:
            out.append(RecoveryStrategy(suggestion["strategy"]))
        out += [s for s in ladder if s not in out]
        if ev.get("dependency_down") and forced is None:
            out = [s for s in out if s not in _RESTARTS]
        if st.degraded is not None:
            out = [s for s in out if s is not S.DEGRADE or s is forced]
        if st.fallback:
            out = [s for s in out if s is not S.FALLBACK or s is forced]
        if S.ALERT_HUMAN not in out:
            out.append(S.ALERT_HUMAN)
        return out

    def _skip_reason(self, name: str, manual: bool) -> str | None:
        st = self.state(name)
        spec = None
        with contextlib.suppress(LookupError):
            spec = self._services().specs().get(name)
        if spec is None:
            return f"{name} is not a declared service (or the services subsystem is not running)"
        if st.paused_by_human and not manual:
            return f"auto-healing of {name} is paused by a human (POST /api/healing/override)"
        mode = self.ctx.governance.mode
        if mode == "emergency_stop" and not spec.core:
            return f"emergency_stop: only core services are healed and {name} is not core"
        survival = self.ctx.store.kv_get("survival", {}) or {}
        if survival.get("active") and not spec.core:
            return f"survival mode: {name} is not core and is kept stopped"
        if st.phase != "normal" and not manual:
            return f"{name} is in {st.phase}: the crash-loop back-off handles it"
        return None

    async def _run_ladder(self, inc: Incident) -> None:
        while inc.step < len(inc.ladder):
            strategy = inc.ladder[inc.step]
            gate = self._gate(strategy, inc)
            if gate == "pending":
                self.pending[inc.id] = inc
                self._save(inc, "awaiting_approval", f"{strategy.value} awaits approval "
                           f"{inc.pending['id'] if inc.pending else ''}")
                return
            if gate == "dry_run":
                res = StrategyResult(strategy, True, f"dry-run in mode {inc.mode}: decided "
                                     "and recorded, not done")
                self._attempt(inc, res, gate, 0.0)
                self._finish(inc, "dry_run", res.message)
                return
            if gate == "rejected":
                self._attempt(inc, StrategyResult(strategy, False, "rejected by a human"),
                              gate, 0.0)
                inc.step += 1
                continue
            res = await self._execute(strategy, inc, gate)
            if res.ok:
                final = "escalated" if strategy is S.ALERT_HUMAN else "healed"
                self._finish(inc, final, res.message)
                return
            inc.step += 1
        self._finish(inc, "failed", "every strategy failed")

    def _gate(self, strategy: RecoveryStrategy, inc: Incident) -> str:
        """enforce | dry_run | pending | rejected (approved requests count as enforce)."""
        kind = STRATEGY_ACTION[strategy]
        gov = self.ctx.governance
        gate = gov.action_mode(kind)
        if gov.mode == "governed" and strategy.value in self.policy()["approval_list"]:
            gate = "require_approval"
        if gate != "require_approval":
            return gate
        gen = self.ctx.desired.current
        number = gen.number if gen else 0
        key = _action_hash(kind, inc.service, strategy, inc.classification.signature)
        approvals = self.ctx.approvals
        if approvals.take_approved(key, number) is not None:
            inc.pending = None
            return "approved"
        if approvals.rejected(key, number):
            inc.pending = None
            return "rejected"
        ttl = self.ctx.policy()["governance"]["approval_ttl_seconds"]
        req = approvals.request(
            controller="healing", resource=f"Service/{inc.service}", action_kind=kind,
            action={"strategy": strategy.value, "service": inc.service, "incident": inc.id,
                    "reason": inc.report.message, "classification":
                    inc.classification.as_dict()},
            action_hash=key, generation=number, mode=gov.mode, ttl=ttl)
        inc.pending = {"id": req["id"], "hash": key, "strategy": strategy.value,
                       "generation": number}
        return "pending"

    async def _execute(self, strategy: RecoveryStrategy, inc: Incident,
                       gate: str) -> StrategyResult:
        t0 = self.ctx.clock.monotonic()
        if strategy is S.ALERT_HUMAN:
            res = await self.strategies.alert_human(inc.service, self._alert_reason(inc),
                                                    self._alert_context(inc))
        else:
            breaker = self.breakers.heal(inc.service)
            try:
                res = await breaker.call_async(self._checked, strategy, inc)
            except CircuitOpenError as exc:
                res = StrategyResult(strategy, False, f"not tried: {exc} (this service "
                                     "keeps failing to heal)", {"breaker": "OPEN"})
            except _Failed as exc:
                res = exc.result
            except Exception as exc:
                log.exception("%s of %s crashed", strategy.value, inc.service)
                res = StrategyResult(strategy, False, f"{type(exc).__name__}: {exc}")
        self._attempt(inc, res, gate, self.ctx.clock.monotonic() - t0)
        return res

    async def _checked(self, strategy: RecoveryStrategy, inc: Incident) -> StrategyResult:
        res = await self._dispatch(strategy, inc)
        if not res.ok:
            raise _Failed(res)
        return res

    async def _dispatch(self, strategy: RecoveryStrategy, inc: Incident) -> StrategyResult:
        name, why = inc.service, f"self-healing {inc.id}: {inc.report.message}"
        st = self.state(name)
        if strategy in _RESTARTS or strategy is S.ROLLBACK:
            self.crashloop.release(name)
        if strategy is S.RESTART_SERVICE:
            if inc.report.source != "manual" and self.crashloop.over_budget(
                    name, counting=bool(inc.evidence.get("running"))):
                self.crashloop.enter(name, inc.report, inc)
                return StrategyResult(strategy, False, "restart budget exhausted: "
                                      "CrashLoopBackOff")
            return await self.strategies.restart_service(name, why)
        if strategy is S.RESTART_ALL:
            return await self.strategies.restart_all(why)
        if strategy is S.ROLLBACK:
            return await self.strategies.rollback_to_version(
                name, why, trigger=lambda: self.ctx.trigger("services"))
        if strategy is S.RETRY:
            return await self.strategies.retry(name, why)
        if strategy is S.FALLBACK:
            res = await self.strategies.activate_fallback(name, why)
            st.fallback = st.fallback or res.ok
        elif strategy is S.DEGRADE:
            res = await self.strategies.enter_degraded_mode(name, why)
            if res.ok:
                st.degraded = res.details.get("previous")
        else:  # ISOLATE
            res = await self.strategies.isolate_component(name, why)
            if res.ok:
                st.phase, st.next_at = "isolated", (self.ctx.clock.monotonic() +
                                                    self.policy()["isolation"]
                                                    ["slow_retry_seconds"])
        self.save_state(st)
        return res

    # -- recording ----------------------------------------------------------------------------------
    def _attempt(self, inc: Incident, res: StrategyResult, gate: str, took: float) -> None:
        inc.attempts.append({"strategy": res.strategy.value, "gate": gate, "ok": res.ok,
                             "message": res.message, "took_s": round(took, 3),
                             "details": _public(res.details)})
        inc.graph_attempt(self.ctx.graph, res, gate)
        self.ctx.bus.publish("healing.attempt", incident=inc.id, service=inc.service,
                             strategy=res.strategy.value, ok=res.ok, message=res.message)
        if res.strategy is not S.ALERT_HUMAN and gate in ("enforce", "approved"):
            self.classifier.learn_from_error(inc.classification, {"strategy": res.strategy,
                                                                  "success": res.ok})

    def _save(self, inc: Incident, state: str, message: str) -> None:
        inc.state, inc.message = state, message
        self.history.save(inc.row())

    def _finish(self, inc: Incident, state: str, message: str) -> None:
        now = self.ctx.clock
        inc.finished_at = now.now()
        inc.success = {"healed": True, "failed": False, "escalated": False}.get(state)
        if state == "healed":
            inc.mttr_s = round(now.monotonic() - inc.report.detected_mono, 3)
        used = inc.attempts[-1]["strategy"] if inc.attempts else None
        if inc.memory_id is not None:
            self.memory.update(inc.memory_id, recovery_used=used, success=inc.success,
                               notes=f"{state}: {message}"[:500], duration_s=inc.mttr_s)
        if state in ("skipped", "dry_run"):
            inc.graph_note(self.ctx.graph, f"{state}: {message}", {"state": state})
        self._save(inc, state, message)
        st = self.state(inc.service)
        st.open_incident = inc.id if state in ("escalated", "failed") else None
        st.escalated_at = self.ctx.clock.monotonic() if st.open_incident else None
        if state == "healed" and not (st.degraded or st.fallback):
            self.alerts.resolve(inc.service, f"healed by {used}")
        self.pending.pop(inc.id, None)
        self.ctx.bus.publish("healing.completed", incident=inc.id, service=inc.service,
                             state=state, strategy=used, success=inc.success,
                             mttr_s=inc.mttr_s, error_type=inc.classification.error_type.value,
                             message=message)

    def _alert_reason(self, inc: Incident) -> str:
        return f"{inc.classification.error_type.value}: {inc.report.source}"

    def _alert_context(self, inc: Incident) -> dict[str, Any]:
        n = self.policy()["alerts"]["log_tail_lines"]
        svc = self.ctx.subsystems.get("services")
        return {"incident": inc.id, "message": inc.report.message,
                "severity": inc.classification.severity.value,
                "classification": inc.classification.as_dict(), "attempts": inc.attempts,
                "evidence": inc.evidence, "logs_tail": svc.log_tail(inc.service, n) if svc
                else [], "graph_node": inc.nodes[0] if inc.nodes else None,
                "graph_link": f"/api/graph/why/{inc.last_node}" if inc.nodes else None,
                "state": self.state(inc.service).as_dict(self.ctx.clock)}

    # -- the healing service --------------------------------------------------------------------------
    async def start_healing_service(self) -> None:
        """Listen to the bus and tick periodically until ``stop``."""
        if self._loop_task is not None:
            return
        self._sub = self.ctx.bus.subscribe("service.", "approval.", "desired.", "governance.")
        self._loop_task = asyncio.create_task(self._run(), name="healing-service")

    async def stop(self) -> None:
        """Stop the loop and every heal in flight."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._sub is not None:
            self._sub.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.check.close()

    async def _run(self) -> None:
        while True:
            tick = self.policy()["detection"]["tick_seconds"]
            got = await wait_or_timeout(self._sub.get(), tick)
            ev = None if got is TIMED_OUT else got
            try:
                while ev is not None:
                    self.on_event(ev)
                    ev = self._sub.get_nowait()
                if self.ctx.clock.monotonic() - self._last_tick >= tick:
                    await self.tick()
            except Exception:
                log.exception("healing loop iteration failed")

    def on_event(self, ev: Any) -> None:
        """Turn one bus event into heals (spawned as tasks)."""
        topic, d = ev.topic, ev.data
        if topic == "service.exited":
            report = self.detector.from_exit(ev)
            if report is not None and not self.crashloop.on_exit(report):
                self.spawn(self.handle_report(report))
        elif topic == "service.unhealthy":
            self.spawn(self.handle_report(self.detector.from_unhealthy(ev)))
        elif topic == "service.not_ready":
            self.spawn(self._if_dependency_down(self.detector.from_not_ready(ev)))
        elif topic == "service.probe":
            self._on_probe(ev)
        elif topic == "service.healthy":
            st = self.state(d["service"])
            st.healthy_since = self.ctx.clock.monotonic()
            st.escalated_at = st.open_incident = None

    def _on_probe(self, ev: Any) -> None:
        verdict, report = self.detector.feed_probe(ev)
        name = ev.data["service"]
        st = self.state(name)
        if report is not None and not ((st.degraded or st.fallback) and
                                       report.source in ("slow", "errors")):
            self.spawn(self.handle_report(report))
        elif verdict == "closed":
            st.escalated_at = st.open_incident = None
            if st.degraded is not None or st.fallback:
                self.spawn(self.restore(name))

    async def _if_dependency_down(self, report: ErrorReport) -> None:
        with contextlib.suppress(LookupError):
            if await self.check.dependencies_down(report.service):
                await self.handle_report(report)

    async def tick(self) -> None:
        """Periodic work: policy sync, memory limits, crash-loop tries, approvals, restores."""
        self._last_tick = self.ctx.clock.monotonic()
        self.breakers.sync_policy()
        for report in self.detector.memory_reports():
            if not self.state(report.service).busy:
                self.spawn(self.handle_report(report))
        await self.crashloop.tick()
        for inc in list(self.pending.values()):
            if not self.state(inc.service).busy:
                self.spawn(self._resume(inc))
        for name, st in list(self.states.items()):
            if (st.degraded is not None or st.fallback) and not st.busy:
                self.spawn(self._maybe_restore(name))

    async def _resume(self, inc: Incident) -> None:
        """Continue an incident whose strategy awaited approval (once decided)."""
        st = self.state(inc.service)
        if st.busy or inc.pending is None:
            return
        row = self.ctx.store.query_one("SELECT state FROM approvals WHERE id=?",
                                       (inc.pending["id"],))
        state = row["state"] if row else "missing"
        if state == "pending":
            return
        st.busy = True
        try:
            if state in ("expired", "stale", "missing"):
                self._attempt(inc, StrategyResult(RecoveryStrategy(inc.pending["strategy"]),
                                                  False, f"approval {state}"), state, 0.0)
                inc.pending = None
                inc.step += 1
            await self._run_ladder(inc)
        finally:
            st.busy = False

    async def _maybe_restore(self, name: str) -> None:
        b = self.breakers.service(name).get_state()
        if b is not CircuitState.CLOSED:
            return
        with contextlib.suppress(LookupError):
            if await self.check.dependencies_down(name):
                return
            ok, _ = await self.check.probe(name)
            if ok:
                await self.restore(name)

    async def restore(self, name: str) -> dict[str, Any]:
        """Undo DEGRADE and FALLBACK once the service is healthy again."""
        st = self.state(name)
        if st.busy:
            return {"restored": False}
        st.busy = True
        try:
            done = {}
            if st.degraded is not None:
                done["features"] = await self.strategies.exit_degraded_mode(name, st.degraded)
                if done["features"]:
                    st.degraded = None
            if st.fallback:
                done["fallback"] = self.strategies.deactivate_fallback(name)
                st.fallback = False
            self.save_state(st)
            self.alerts.resolve(name, "recovered: full service restored")
            about = self.ctx.graph.ensure("resource", f"Service/{name}")
            label = f"{name} recovered: degraded mode and fallback undone"
            self.ctx.graph.record_chain([("outcome", label, done)], context={"about": about})
            self.ctx.bus.publish("healing.restored", service=name, **done)
            return {"restored": True, **done}
        finally:
            st.busy = False

    # -- facade -----------------------------------------------------------------------------------------
    def get_healing_stats(self) -> dict[str, Any]:
        """Attempts, successes, MTTR per error type; breakers; phases; memory."""
        return {**self.history.stats(), "breakers": self.breakers.snapshot(),
                "services": [st.as_dict(self.ctx.clock) for _, st in sorted(self.states.items())],
                "memory": self.memory.stats(),
                "pending_approvals": [inc.pending for inc in self.pending.values()]}


class _Failed(Exception):
    def __init__(self, result: StrategyResult) -> None:
        super().__init__(result.message)
        self.result = result


def _action_hash(kind: str, service: str, strategy: RecoveryStrategy, signature: str) -> str:
    blob = json.dumps([kind, f"Service/{service}", strategy.value, signature])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _public(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy without bulky fields (the logs tail goes to alerts only)."""
    return {k: v for k, v in d.items() if k != "log_tail" and
            isinstance(v, (str, int, float, bool, type(None), list, dict))}
