"""Restart budget, crash-loop back-off, isolation and the slow periodic retry.

After ``restart_budget.max_restarts`` restarts inside ``window_seconds`` a service goes to
*backoff*: the services controller is asked to keep it stopped (a ``pause`` intent) and the healer
tries it again after a growing, jittered, capped delay (``crashloop.backoff``). After
``crashloop.max_attempts`` failed tries it is ISOLATED and a human is alerted; then it is
retried every ``isolation.slow_retry_seconds`` so that a service whose cause went away comes
back without a human. Proven health for ``healthy_reset_seconds`` clears the count.

The engine decides none of it: it counts restarts (observations) and carries out what the
healing controller's pure diff planned — ``plan`` (handed in by ``controllers/healing.py``) is
asked at every counted restart and plans CrashLoopBackOff through the Executor when the budget
is exceeded (``enter_planned(name, delay)`` is its act, the delay planned too); a due try
comes with what its failure leads to (``start_try(name, on_failure, next_delay)``: another
back-off try after the planned delay, or isolation). A try that fails keeps the service
stopped (the back-off's pause) either way: the isolation is its own Action through the
Executor, planned by the diff from ``isolate_due`` until done — an isolation waiting for a
human's approval leaves no failing process running meanwhile; a rejected one leaves the
service backing off with the slow retry. The healthy reset of the count is planned as well
(``reset_restarts``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.heal_recording import IncidentRecorder
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.ladder_steps import LadderSteps
from autonomous.self_healing.model import ErrorReport, RecoveryStrategy, StrategyResult
from autonomous.self_healing.process_intents import ProcessIntents
from autonomous.self_healing.recovery_strategies import RecoveryStrategies
from autonomous.self_healing.service_state import Trying
from autonomous.self_healing.verify import HealthCheck, Verdict, Watch

__all__ = ["CrashLoop", "Try"]

log = logging.getLogger("atlas.healing.crashloop")


Opener = Callable[[ErrorReport], Awaitable[Incident]]


class Try(NamedTuple):
    """One crash-loop try: ``healthy`` None when it was not made (a heal of it runs)."""

    healthy: bool | None
    was: str  # the phase it was made in
    message: str
# service → True when the healing controller planned CrashLoopBackOff for its counted restarts
Planner = Callable[[str], bool]


class CrashLoop:
    """Works on the engine's per-service states (``shared.states``)."""

    def __init__(self, shared: Shared, rec: IncidentRecorder, processes: ProcessIntents,
                 strategies: RecoveryStrategies, check: HealthCheck, alerts: HumanAlerts,
                 opener: Opener) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.clock = shared.ctx.clock
        self.rec = rec
        self.processes = processes
        self.strategies = strategies
        self.check = check
        self.alerts = alerts
        self.opener = opener  # classify and open an incident for a report
        self.steps = LadderSteps(strategies)
        self.plan: Planner = lambda _name: False  # the healing controller's (see ``attach``)

    def _policy(self) -> dict[str, Any]:
        return self.shared.policy()

    def on_exit(self, report: ErrorReport) -> bool:
        """Count an unexpected exit; True when the crash-loop machinery owns it now (the
        service is backing off or isolated, or the plan put it into back-off)."""
        st = self.shared.state(report.service)
        st.healthy_since = None
        if st.phase != "normal":
            return True
        st.count_restart(self.clock.monotonic(), self._policy()["restart_budget"]
                         ["window_seconds"])
        return self._planned(report)

    def count_restart(self, name: str) -> None:
        """The healer restarts the running process of ``name``: one more restart (the step's
        plan weighed it against the budget already)."""
        self.shared.state(name).count_restart(
            self.clock.monotonic(), self._policy()["restart_budget"]["window_seconds"])

    def _planned(self, report: ErrorReport) -> bool:
        self.shared.budget_reports[report.service] = report  # the back-off incident's report
        return self.plan(report.service)

    def enter_planned(self, name: str, delay: float) -> bool:
        """The act of a planned CrashLoopBackOff, its first try ``delay`` seconds away (False:
        already backing off or isolated)."""
        st = self.shared.state(name)
        report = self.shared.budget_reports.pop(name, None)
        if st.phase != "normal":
            return False
        if report is None:  # planned by a reconcile pass, not at a counted restart
            report = ErrorReport(name, "exit", "restart budget exhausted", None, {},
                                 self.clock.now(), self.clock.monotonic())
        self.enter(name, report, None, delay)
        return True

    def enter(self, name: str, report: ErrorReport, inc: Incident | None,
              delay: float) -> None:
        """Go to back-off: keep the service stopped, schedule the first try."""
        st = self.shared.state(name)
        budget = self._policy()["restart_budget"]
        st.phase, st.attempts, st.isolate_due = "backoff", 0, None
        st.next_at = self.clock.monotonic() + delay
        st.reason = (f"CrashLoopBackOff: {len(st.restarts)} restarts within "
                     f"{budget['window_seconds']:g}s (budget {budget['max_restarts']})")
        self.processes.pause(name, f"self-healing: {st.reason}; next try in "
                                        f"{delay:.1f}s", incident=inc.id if inc else None)
        self.shared.save_state(st)
        self.ctx.bus.publish("healing.crashloop", service=name, phase="backoff",
                                  restarts=len(st.restarts), next_try_s=round(delay, 3))
        if inc is None:
            inc = self.shared.open_incident(name)  # the fault's incident, if one is open
        if inc is None:
            self.shared.tasks.spawn(self._record_entry(report, delay))
        else:
            self.shared.crash_incidents[name] = inc

    async def _record_entry(self, report: ErrorReport, delay: float) -> None:
        inc = await self.opener(report)
        reason = self.shared.state(report.service).reason
        res = StrategyResult(RecoveryStrategy.RETRY, True, f"{reason}; next try in "
                             f"{delay:.1f}s", {"phase": "backoff"})
        self.rec.attempt(inc, res, "crashloop", 0.0)
        self.rec.save(inc, "backoff", res.message)
        self.shared.state(report.service).open_incident = inc.id
        self.shared.crash_incidents[report.service] = inc

    def release(self, name: str) -> None:
        """Leave back-off/isolation (a human or a strategy takes over)."""
        st = self.shared.state(name)
        if st.phase == "normal":
            return
        st.phase, st.attempts, st.next_at, st.reason = "normal", 0, None, ""
        st.restarts.clear()
        st.isolate_due, st.trying = None, None
        self.processes.release(name, "self-healing: released")
        self.shared.save_state(st)

    def reset_restarts(self, name: str) -> int:
        """The act of a planned healthy reset: forget the counted restarts (how many)."""
        st = self.shared.state(name)
        n = len(st.restarts)
        st.restarts.clear()
        return n

    def start_try(self, name: str, on_failure: str, next_delay: float | None) -> Try:
        """Start one back-off try (or slow retry when isolated): release the service to its
        owner and return — its verification is observed on later passes
        (:meth:`observe_try`), the verdict settled by :meth:`settle`. What its failure leads
        to comes with it (``backoff``: another try ``next_delay`` seconds later; ``isolate``:
        kept stopped, ``isolate_due`` for the diff to plan — :meth:`isolate`)."""
        st = self.shared.state(name)
        if st.busy or st.trying is not None:
            return Try(None, st.phase, "a heal or a try of it is running: not tried")
        old = (self.shared.services().observed().get(name) or {}).get("pid")
        attempt = st.attempts + 1
        self.processes.release(name, f"self-healing: {st.phase} try {attempt}")
        st.trying = Trying(st.phase, attempt, on_failure, next_delay,
                           Watch(self.clock.monotonic(), old))
        self.ctx.bus.publish("healing.crashloop", service=name, phase=st.phase,
                             trying=attempt)
        return Try(None, st.phase, f"try {attempt} started: its verification is observed")

    async def observe_try(self, name: str) -> Verdict | None:
        """One more observation of the try in flight (the owner's process, a probe of a new
        one), judged by the pure ``verify.judge``; the verdict once there is one."""
        st = self.shared.state(name)
        t = st.trying
        if t is None or t.verdict is not None:
            return None if t is None else t.verdict
        t.watch, t.verdict = await self.check.look(name, t.watch)
        return t.verdict

    def settle(self, name: str) -> Try:
        """The act of a try's observed verdict: healthy → back to normal (its incident
        healed); failed → what was planned with the try."""
        st = self.shared.state(name)
        t = st.trying
        if t is None or t.verdict is None:
            return Try(None, st.phase, "no try of it awaits its verdict")
        st.trying = None
        if t.verdict.ok:
            self._recovered(name, t.was, t.verdict.message)
            return Try(True, t.was, t.verdict.message)
        self._failed(name, t.was, t.verdict.message, t.on_failure, t.next_delay)
        return Try(False, t.was, t.verdict.message)

    def _recovered(self, name: str, was: str, message: str) -> None:
        st = self.shared.state(name)
        st.phase, st.attempts, st.next_at, st.reason = "normal", 0, None, ""
        st.restarts.clear()
        st.isolate_due = None
        self.shared.save_state(st)
        self.alerts.resolve(name, f"recovered after {was}: {message}")
        self.ctx.bus.publish("healing.crashloop", service=name, phase="recovered",
                                  message=message)
        inc = self.shared.crash_incidents.pop(name, None)
        if inc is not None:
            res = StrategyResult(RecoveryStrategy.RESTART_SERVICE, True,
                                 f"healthy again after {was}: {message}")
            self.rec.attempt(inc, res, "crashloop", 0.0)
            self.rec.finish(inc, "healed", res.message)

    def _failed(self, name: str, was: str, message: str, on_failure: str,
                next_delay: float | None) -> None:
        st = self.shared.state(name)
        p = self._policy()
        st.attempts += 1
        now = self.clock.monotonic()
        inc = self.shared.crash_incidents.get(name)
        incident = inc.id if inc is not None else None
        if on_failure == "backoff":
            if next_delay is None:
                raise ValueError("a back-off try that fails into another needs its planned "
                                 "delay (next_delay_seconds)")
            st.next_at = now + next_delay
            self.processes.pause(name, f"self-healing: CrashLoopBackOff try "
                                      f"{st.attempts} failed ({message}); next in "
                                      f"{next_delay:.1f}s", incident=incident)
            self._note(inc, RecoveryStrategy.RETRY, f"try {st.attempts} failed: {message}; "
                       f"next in {next_delay:.1f}s")
        else:
            # kept stopped until the isolation the diff plans is done; should a human reject
            # it, the slow retry goes on from here
            st.isolate_due = {"was": was, "message": message, "attempt": st.attempts}
            st.next_at = now + p["isolation"]["slow_retry_seconds"]
            self.processes.pause(name, f"self-healing: {was} try {st.attempts} failed "
                                 f"({message}); kept stopped, isolation planned",
                                 incident=incident)
        self.shared.save_state(st)

    async def isolate(self, name: str, was: str, message: str) -> str:
        """The act of a planned crash-loop isolation: keep it stopped (an ``isolate`` intent
        for the owner) and alert a human; the slow retry comes from the phase's ``next_at``."""
        st = self.shared.state(name)
        st.phase, st.isolate_due = "isolated", None
        st.next_at = self.clock.monotonic() + self._policy()["isolation"]["slow_retry_seconds"]
        self.shared.save_state(st)
        inc = self.shared.crash_incidents.get(name)
        res = await self.steps.carry(  # kept stopped already: verified at once
            RecoveryStrategy.ISOLATE, name, f"{was}: still failing after "
            f"{self.shared.state(name).attempts} tries",
            incident=inc.id if inc is not None else None)
        self._note(inc, RecoveryStrategy.ISOLATE, res.message)
        alert = await self.strategies.alert_human(
            name, "crash loop: isolated",
            {**(self.rec.alert_context(inc) if inc is not None else {}),
             "message": f"{name} keeps failing ({message}); isolated, retried every "
                        f"{self._policy()['isolation']['slow_retry_seconds']:g}s",
             "severity": "critical"})
        self._note(inc, RecoveryStrategy.ALERT_HUMAN, alert.message)
        if inc is not None:
            self.rec.save(inc, "escalated", f"isolated and a human alerted: {message}")
        self.ctx.bus.publish("healing.crashloop", service=name, phase="isolated",
                                  message=message)
        return f"{res.message}; {alert.message}"

    def _note(self, inc: Incident | None, strategy: RecoveryStrategy, message: str) -> None:
        if inc is None:
            return
        self.rec.attempt(inc, StrategyResult(strategy, strategy is not RecoveryStrategy.RETRY,
                                               message), "crashloop", 0.0)
        self.rec.save(inc, inc.state, message)
