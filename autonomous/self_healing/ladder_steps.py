"""Each ladder strategy in start / observe form: ``start`` asks for the effect (an intent for
the owner of the process, the flags or the route) and returns a :class:`StepRun` — the step
in flight, recorded on its incident; ``observe`` takes one more look at it (the owner's
process and a probe judged by the pure ``verify.judge``, the flag owner's result, the front)
and returns the :class:`StrategyResult` once there is one, else None. Nothing here waits for
its own outcome: the healing controller's passes observe, its diff plans the settle.

A step that needs no verification (ALERT_HUMAN, one that cannot apply) is settled at start
(``StepRun.verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autonomous.core.backoff import BackoffSpec, stable_draw
from autonomous.feature_flags import FeatureFlags
from autonomous.self_healing.model import RecoveryStrategy as S
from autonomous.self_healing.model import StrategyResult
from autonomous.self_healing.process_intents import REQUESTER
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.verify import Watch
from autonomous.supervisor.order import topo_order

__all__ = ["LadderSteps", "StepRun"]


@dataclass
class StepRun:
    """One ladder step in flight: what was asked for and what its verification saw."""

    strategy: S
    service: str  # the service verified now (RESTART_ALL: the one restarted now)
    started: float  # monotonic
    gate: str  # enforce | approved
    decision: str | None = None  # the Executor's decision node (later intents point to it)
    incident: str | None = None  # the incident it is a step of (its intents are bound to it)
    watch: Watch | None = None  # a new process's verification
    intent: str | None = None
    phase: str = ""  # FALLBACK: target | front; RETRY: probe
    attempt: int = 0  # RETRY: re-checks made
    next_at: float = 0.0  # RETRY: the next re-check
    order: list[str] = field(default_factory=list)  # RESTART_ALL: the dependency order
    done: list[str] = field(default_factory=list)  # RESTART_ALL: verified so far
    details: dict[str, Any] = field(default_factory=dict)
    counted: bool = False  # RESTART: the restart that happened was counted
    verdict: StrategyResult | None = None

    def status(self) -> dict[str, Any]:
        """Its status as the incident's row carries it (an operator restart sees it)."""
        return {"strategy": self.strategy.value, "service": self.service, "gate": self.gate,
                "phase": self.phase, "intent": self.intent, "attempt": self.attempt,
                "done": list(self.done), "verdict": None if self.verdict is None
                else {"ok": self.verdict.ok, "message": self.verdict.message}}


class LadderSteps:
    """Start and observe the strategies (``strategies`` holds the intents, checks, flags)."""

    def __init__(self, strategies: RecoveryStrategies) -> None:
        self.s = strategies
        self.check = strategies.check
        self.processes = strategies.processes
        self.flags: FeatureFlags = strategies.flags
        self.clock = strategies.clock

    def _v(self) -> dict[str, Any]:
        v: dict[str, Any] = self.s.policy()["verify"]
        return v

    def _pid(self, name: str) -> int | None:
        pid = (self.s.services().observed().get(name) or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def _settled(self, run: StepRun, ok: bool, message: str, *,
                 applicable: bool = True, **details: Any) -> StepRun:
        run.verdict = StrategyResult(run.strategy, ok, message, {**run.details, **details},
                                     applicable=applicable)
        return run

    # -- start -----------------------------------------------------------------------------------
    async def start(self, strategy: S, name: str, why: str, *, incident: str | None,
                    gate: str, decision: str | None, pid: int | None = None) -> StepRun:
        run = StepRun(strategy, name, self.clock.monotonic(), gate, decision, incident)
        if strategy is S.RETRY:
            if not (self.s.services().observed().get(name) or {}).get("running"):
                return self._settled(run, False, f"{name} is not running: nothing to "
                                     "re-check", applicable=False, attempts=0)
            run.phase, run.next_at = "probe", run.started
        elif strategy is S.RESTART_SERVICE:
            old = pid if pid is not None else self._pid(name)
            it = self.processes.restart(name, old, why, incident=incident, decision=decision)
            run.watch, run.intent = Watch(run.started, old), it.id
            run.details = {"old_pid": old, "intent": it.id}
        elif strategy is S.RESTART_ALL:
            run.order = topo_order(self.s.services().specs())
            run.details = {"order": run.order}
            self._restart_next(run, why)
        elif strategy is S.ROLLBACK:
            good = [r for r in self.s.services().revisions(name) if r.get("known_good")
                    and not r.get("blocked") and r.get("spec_hash") != self.processes._hash(name)]
            if not good:
                return self._settled(run, False, f"service {name!r} has no known-good "
                                     "revision to roll back to", applicable=False)
            old = self._pid(name)
            it = self.processes.use_revision(name, why, incident=incident, decision=decision)
            # judged on the process of the revision rolled back to, not on a crash restart of
            # the blocked one the owner may start before it sees the intent
            run.watch = Watch(run.started, old, want_hash=str(good[0]["spec_hash"]))
            run.intent = it.id
            run.details = {"service": name, "blocked": it.params.get("from"),
                           "to": good[0]["spec_hash"], "intent": it.id}
        elif strategy is S.FALLBACK:
            return await self._start_fallback(run, why)
        elif strategy is S.DEGRADE:
            spec = self.s.services().specs().get(name)
            if spec is None or spec.features is None or spec.port is None:
                return self._settled(run, False, f"{name} declares no spec.features",
                                     applicable=False)
            it = self.flags.degrade(name, requester=REQUESTER, reason=why, incident=incident,
                                    decision=decision)
            run.intent = it.id
            run.details = {"intent": it.id, "url": f"http://{spec.host}:{spec.port}"
                                                   f"{spec.features.endpoint}"}
        elif strategy is S.ISOLATE:
            it = self.processes.isolate(name, f"isolated by self-healing: {why}",
                                        incident=incident, decision=decision)
            run.intent, run.details = it.id, {"isolated": True, "intent": it.id}
        else:
            raise ValueError(f"{strategy.value} is not started as a step")
        return run

    def _restart_next(self, run: StepRun, why: str) -> None:
        name = run.order[len(run.done)]
        old = self._pid(name)
        it = self.processes.restart(name, old, why, incident=run.incident,
                                    decision=run.decision)
        run.service, run.intent = name, it.id
        run.watch = Watch(self.clock.monotonic(), old)

    async def _start_fallback(self, run: StepRun, why: str) -> StepRun:
        svc = self.s.services()
        spec = svc.specs().get(run.service)
        fb = spec.fallback if spec is not None else None
        if fb is None or not (fb.service or fb.url):
            return self._settled(run, False, f"{run.service} declares no spec.fallback",
                                 applicable=False)
        run.details = {"why": why}
        if fb.service:
            run.phase, run.details["target"] = "target", fb.service
            if not (svc.observed().get(fb.service) or {}).get("running"):
                self.processes.trigger()  # its owner starts it
            run.watch = Watch(run.started, None)
            return run
        url = str(fb.url)
        ok, msg, _, _ = await self.check.get(url, self.s.policy()["detection"]
                                             ["probe_timeout_seconds"])
        if not ok:
            return self._settled(run, False, f"fallback {url} is not healthy: {msg}")
        self._route(run, url, url)
        return run

    def _route(self, run: StepRun, target: str, url: str | None) -> None:
        """The fallback answers: ask for the route; the front is observed from now on."""
        name, why = run.service, str(run.details.pop("why", ""))
        it = self.processes.fallback(name, target, url, why, incident=run.incident)
        route = {"service": name, "target": target, "url": url, "since": self.clock.now(),
                 "reason": why, "intent": it.id}
        self.s.bus.publish("service.fallback", active=True, **route)
        run.phase, run.intent, run.details = "front", it.id, route
        run.next_at = self.clock.monotonic()  # the front's verification starts now

    # -- observe ---------------------------------------------------------------------------------
    async def observe(self, run: StepRun) -> StrategyResult | None:
        """One more look at the step in flight; its result once there is one."""
        if run.verdict is None:
            await self._observe(run)
        return run.verdict

    async def _observe(self, run: StepRun) -> None:
        now, limit = self.clock.monotonic(), float(self._v()["timeout_seconds"])
        st = run.strategy
        if st is S.RETRY:
            if now >= run.next_at:  # its next re-check is due
                self._retry(run, now, *await self.check.probe(run.service))
        elif st in (S.RESTART_SERVICE, S.ROLLBACK, S.RESTART_ALL):
            assert run.watch is not None
            run.watch, verdict = await self.check.look(run.service, run.watch)
            if verdict is None:
                return
            extra: dict[str, Any] = {"pid": verdict.pid,
                                     "healthy_after_s": round(verdict.elapsed_s, 3)}
            if st is S.RESTART_ALL:
                if not verdict.ok:
                    self._settled(run, False, f"{run.service}: {verdict.message}",
                                  restarted=list(run.done))
                    return
                run.done.append(run.service)
                if len(run.done) < len(run.order):
                    self._restart_next(run, f"restart-all: {', '.join(run.order)}")
                    return
                self._settled(run, True, f"restarted {', '.join(run.order)} in dependency "
                              "order", restarted=list(run.done))
            elif st is S.ROLLBACK:
                self._settled(run, verdict.ok, f"rolled back to revision "
                              f"{run.details.get('to')}: {verdict.message}", **extra)
            else:
                self._settled(run, verdict.ok, f"restarted: {verdict.message}" if verdict.ok
                              else verdict.message, **extra)
        elif st is S.FALLBACK:
            await self._observe_fallback(run, now, limit)
        elif st is S.DEGRADE:
            self._observe_degrade(run, now, limit)
        elif st is S.ISOLATE:
            if not (self.s.services().observed().get(run.service) or {}).get("running"):
                self._settled(run, True, "stopped and isolated")
            elif now - run.started >= limit:
                self._settled(run, False, "still running after the isolation was asked for")

    def _retry(self, run: StepRun, now: float, ok: bool, msg: str) -> None:
        """RETRY re-checks the service's health (a glitch that passes), with back-off between
        re-checks (a stable draw of the step and re-check: the same plan each pass)."""
        run.attempt += 1
        p = self.s.policy()["retry"]
        if ok:
            self._settled(run, True, f"healthy again after {run.attempt} check(s)",
                          attempts=run.attempt)
        elif run.attempt >= int(p["max_attempts"]):
            # RETRY acts on nothing: a failed re-check says the fault is not a passing
            # glitch, not that a heal of the service failed
            self._settled(run, False, f"still failing after {run.attempt} check(s): {msg}",
                          applicable=False, attempts=run.attempt)
        else:
            spec = BackoffSpec.from_policy(p["backoff"])
            run.next_at = now + spec.delay(run.attempt, stable_draw(
                f"{run.service}/{run.started}/{run.attempt}"))

    async def _observe_fallback(self, run: StepRun, now: float, limit: float) -> None:
        if run.phase == "target":
            assert run.watch is not None
            target = str(run.details["target"])
            run.watch, verdict = await self.check.look(target, run.watch)
            if verdict is None:
                return
            if not verdict.ok:
                self._settled(run, False, f"fallback {target} is not healthy: "
                              f"{verdict.message}")
                return
            self._route(run, target, self.check.health_url(
                self.s.services().specs().get(target)))
            return
        ok, front = await self._front(run.service)
        if ok:
            self._settled(run, True, f"traffic for {run.service} goes to "
                          f"{run.details['target']}; the front answers {front}", front=front)
        elif now - run.next_at >= limit:
            self._settled(run, False, f"fallback to {run.details['target']} requested "
                          f"(intent {run.intent}); the front still answers {front}: not "
                          "healed", applicable=False, front=front)

    async def _front(self, name: str) -> tuple[bool, str]:
        """The front as clients reach it: the gateway's front port when the Service declares
        ``spec.traffic`` (the gateway owner switches it on the intent), else its own probe."""
        spec = self.s.services().specs().get(name)
        traffic = getattr(spec, "traffic", None) if spec is not None else None
        if spec is None or traffic is None or spec.health is None:
            return await self.check.probe(name)
        url = f"http://127.0.0.1:{traffic.port}{spec.health.path}"
        ok, msg, _, _ = await self.check.get(url, min(
            self.s.policy()["detection"]["probe_timeout_seconds"],
            spec.health.timeout_seconds))
        return ok, f"{msg} at {url}"

    def _observe_degrade(self, run: StepRun, now: float, limit: float) -> None:
        assert run.intent is not None
        it = self.flags.intents.get(run.intent)
        done = self.flags.check_applied(it) if it is not None else None
        if done is None and now - run.started < limit:
            return
        name, url = run.service, run.details.get("url")
        if done is None or done.off is None:
            error = done.error if done is not None else \
                f"the feature-flag owner did not apply it within {limit:g} s"
            self.flags.release(name, requester=REQUESTER, reason=f"not applied: {error}")
            self._settled(run, False, f"feature endpoint {url}: {error}", applicable=False)
            return
        flags = (self.flags.service_state(name) or {}).get("flags") or {}
        self._settled(run, True, f"non-core features off: {done.off or 'none'}; kept: "
                      f"{sorted(f for f, on in flags.items() if on)}",
                      previous={**flags, **{f: True for f in done.off}},
                      turned_off=done.off)

    async def carry(self, strategy: S, name: str, why: str, *,
                    incident: str | None = None) -> StrategyResult:
        """Start ``strategy`` and observe it every ``verify.poll_seconds`` until it has its
        result — for a caller outside the ladder that acts and then needs the outcome (the
        crash loop's isolation of a service it keeps stopped already)."""
        run = await self.start(strategy, name, why, incident=incident, gate="enforce",
                               decision=None)
        while True:
            got = await self.observe(run)
            if got is not None:
                return got
            await self.clock.sleep(self._v()["poll_seconds"])
