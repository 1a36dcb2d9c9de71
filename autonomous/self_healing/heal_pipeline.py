"""Healing pipeline, first half: detect → classify → record in memory → build the ladder.

``handle_error`` / ``handle_report`` take one failure, gather its evidence (process state,
probe, logs tail, configuration change, dependencies), classify it, record it in the failure memory
and build the ladder of strategies to try (each step's strategy is chosen by the healing
controller from ``healing_knowledge``, the one success table); then they hand
the incident to :class:`~autonomous.self_healing.heal_execution.LadderRunner`, which starts
its first step. One
collaborator of :class:`~autonomous.self_healing.healing_orchestrator.HealingOrchestrator`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.heal_execution import RESTARTS, LadderRunner
from autonomous.self_healing.heal_recording import IncidentRecorder, public
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import Classification, ErrorReport, RecoveryStrategy
from autonomous.self_healing.process_intents import ServicesView
from autonomous.self_healing.verify import HealthCheck, process_stopped
from autonomous.supervisor.revisions import spec_hash

__all__ = ["RESTARTS", "Admit", "HealingPipeline", "RevisionsView"]

S = RecoveryStrategy

class RevisionsView(Protocol):
    """What the pipeline reads of the services' revisions
    (:class:`autonomous.supervisor.revisions.Revisions`)."""

    def list(self, service: str) -> list[dict[str, Any]]: ...


# (service, a human asked, the failure's source, its signature once classified) → why it
# opens no incident now, or None: the healing controller's pure ``skip_reason`` on what it
# observes (controllers/healing.py hands it in)
Admit = Callable[[str, bool, str, str | None], str | None]


class HealingPipeline:
    """Detect, classify, consult memory, choose; hand the incident to the runner."""

    def __init__(self, shared: Shared, rec: IncidentRecorder, runner: LadderRunner,
                 memory: FailureMemory, classifier: ErrorClassifier,
                 check: HealthCheck, revisions: RevisionsView) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.rec = rec
        self.runner = runner
        self.memory = memory
        self.classifier = classifier
        self.check = check
        self.revisions = revisions  # the services' revisions (known good, blocked)
        self.admit: Admit | None = None  # handed in by the healing controller

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
        skip = self._skip_reason(service, forced is not None, src)
        if skip is not None:  # answered, not recorded: a skip is no incident
            return {"service": service, "state": "skipped", "message": skip}
        inc = await self.handle_report(report, forced=forced)
        return inc.row() if inc is not None else {"service": service, "state": "skipped",
                                                   "message": "a heal of this service is "
                                                              "already in progress, or this "
                                                              "failure was escalated to a "
                                                              "human recently"}

    async def handle_report(self, report: ErrorReport, *,
                            forced: RecoveryStrategy | None = None) -> Incident | None:
        """Run the pipeline for one detected failure (None if a heal is already running, the
        service is not to be healed now — paused, backing off, not core in emergency stop or
        survival — or this failure signature was escalated recently). Such a skip records
        nothing: a paused service probed every few seconds is not a stream of incidents. The
        failure of an undeclared service is recorded (skipped): it is its only trace."""
        st = self.shared.state(report.service)
        if st.busy or self.shared.in_flight(report.service) or self._skip_reason(report.service, forced is not None,
                                        report.source) is not None \
                or self._about_a_replaced_process(report):
            return None
        st.busy = True
        try:
            evidence, cls = await self.classify(report)
            if forced is None and self._skip_reason(report.service, False, report.source,
                                                    cls.signature) is not None:
                return None  # e.g. a human was alerted for this failure recently
            same = self.open_incident(report.service, cls.signature)
            if forced is None and same is not None:  # one incident per fault
                self._repeat(same, report)
                return same
            inc = self.open(report, forced, evidence, cls)
            undeclared = self._undeclared(report.service)
            if undeclared is not None:
                self.rec.finish(inc, "skipped", undeclared)
                return inc
            await self.runner.advance(inc)  # its first step starts; later passes settle it
            return inc
        finally:
            st.busy = False

    def open_incident(self, service: str, signature: str | None = None) -> Incident | None:
        return self.shared.open_incident(service, signature)

    async def open_classified(self, report: ErrorReport) -> Incident:
        """Classify ``report`` and open its incident (the crash loop's entry)."""
        return self.open(report, None, *await self.classify(report))

    def _repeat(self, inc: Incident, report: ErrorReport) -> None:
        inc.repeats += 1
        self.rec.save(inc, inc.state, f"{inc.message or inc.report.message} (seen again "
                   f"{inc.repeats}x, last: {report.message})"[:500]
                   if inc.repeats == 1 else
                   f"{(inc.message or '').split(' (seen again')[0]} (seen again "
                   f"{inc.repeats}x, last: {report.message})"[:500])
        self.ctx.bus.publish("healing.repeated", incident=inc.id, service=inc.service,
                             repeats=inc.repeats, message=report.message)

    async def classify(self, report: ErrorReport) -> tuple[dict[str, Any], Classification]:
        """Gather the evidence of one failure and classify it (no side effects)."""
        evidence = await self._evidence(report)
        return evidence, self.classifier.classify_error(report.exception, evidence)

    def open(self, report: ErrorReport, forced: RecoveryStrategy | None,
              evidence: dict[str, Any], cls: Classification) -> Incident:
        st = self.shared.state(report.service)
        forced = forced or (RecoveryStrategy(st.forced_strategy) if st.forced_strategy
                            else None)
        # the rule's ladder; which of its steps goes first is the healing controller's pure
        # choice from the one success table (healing_knowledge), step by step
        ladder = self._ladder(cls.strategies, forced)
        gen = self.ctx.desired.current
        inc = Incident(report, cls, ladder, self.ctx.governance.mode,
                       gen.number if gen else None, public(evidence),
                       forced=forced.value if forced is not None else None)
        inc.memory_id = self.memory.record_failure(
            cls.signature, context={**inc.evidence, "message": report.message},
            service=report.service, error_type=cls.error_type.value)
        inc.graph_start(self.ctx.graph, self._recent_finding(report.service))
        self.shared.incidents[inc.id] = inc
        self.ctx.bus.publish("healing.detected", incident=inc.id, service=report.service,
                             source=report.source, error_type=cls.error_type.value,
                             severity=cls.severity.value, rule=cls.rule)
        return inc

    def _recent_finding(self, service: str) -> dict[str, Any] | None:
        """The health controller's latest finding about ``service`` if recent enough."""
        got = self.shared.findings.get(service)
        window = self.shared.policy()["detection"]["finding_window_seconds"]
        if got is None or self.ctx.clock.monotonic() - got[0] > window:
            return None
        return got[1]

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
        reported = report.context.get("pid")
        if isinstance(reported, int) and reported != obs.get("pid"):
            # the process the report is about was already replaced by its owner: it is not
            # running (the new one's state is not this failure's evidence)
            ev.setdefault("running", False)
        ev.setdefault("running", bool(obs.get("running")))
        ev.setdefault("pid", obs.get("pid"))
        ev.setdefault("status_code", last.get("status_code"))
        ev.setdefault("probe_error", last.get("error"))
        ev["stopped"] = process_stopped(obs.get("pid")) if ev["running"] else False
        ev["probes_seen"] = list(obs.get("probe_history") or [])[-5:]  # with their values
        ev["log_tail"] = svc.log_tail(name, self.shared.policy()["classification"]["log_tail_lines"])
        ev["config_changed"] = self._config_changed(name, svc)
        with contextlib.suppress(LookupError):
            down = await self.check.dependencies_down(name)
            ev["dependency_down"], ev["dependencies_down"] = bool(down), down
        return ev

    def _config_changed(self, name: str, svc: ServicesView) -> bool:
        """The desired revision never proved healthy while an older one did."""
        spec = svc.specs().get(name)
        if spec is None:
            return False
        rows = self.revisions.list(name)
        cur = spec_hash(spec)
        mine = [r for r in rows if r["spec_hash"] == cur]
        good = [r for r in rows if r["spec_hash"] != cur and r["known_good"] and not r["blocked"]]
        return bool(mine and not mine[0]["known_good"] and good)

    @staticmethod
    def _ladder(ladder: tuple[RecoveryStrategy, ...],
                forced: RecoveryStrategy | None) -> list[RecoveryStrategy]:
        """Order: forced, then the rule's ladder, ALERT_HUMAN last. What cannot apply at a
        step (a restart while a dependency is down, a mitigation already active) is the
        healing controller's plan (``controllers/healing_plan.applicable``), not cut here."""
        out: list[RecoveryStrategy] = []
        if forced is not None:
            out.append(forced)
        out += [s for s in ladder if s not in out]
        if S.ALERT_HUMAN not in out:
            out.append(S.ALERT_HUMAN)
        return out

    def _about_a_replaced_process(self, report: ErrorReport) -> bool:
        """A probe-driven report about a process that is no longer the service's (its owner
        saw it exit and started another): its exit is that failure's one report."""
        pid = report.context.get("pid")
        if report.source in ("exit", "manual") or not isinstance(pid, int):
            return False
        svc = self.ctx.subsystems.get("services")
        if svc is None:
            return False
        return (svc.observed().get(report.service) or {}).get("pid") != pid

    def _undeclared(self, name: str) -> str | None:
        """Why ``name`` cannot be healed at all (its failure is still recorded, skipped)."""
        with contextlib.suppress(LookupError):
            if self.shared.services().specs().get(name) is not None:
                return None
        return f"{name} is not a declared service (or the services subsystem is not running)"

    def _skip_reason(self, name: str, manual: bool, source: str,
                     signature: str | None = None) -> str | None:
        """Why a declared service is not healed now: the healing controller's pure decision
        (``controllers/healing_plan.skip_reason`` on what it observes), handed in as
        ``admit``; such a report is dropped, not recorded."""
        if self.admit is None:
            raise LookupError("whether a failure opens an incident is decided by the healing "
                              "controller (controllers/healing.py hands its admit in)")
        return self.admit(name, manual, source, signature)
