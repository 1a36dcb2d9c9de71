"""Healing pipeline, last step: record each attempt and the outcome — failure memory,
healing history, knowledge graph, what the classifier learns — and notify (bus events
``healing.attempt`` / ``healing.completed``, which telemetry listens to); build the context a
human alert carries. One collaborator of
:class:`~autonomous.self_healing.healing_orchestrator.HealingOrchestrator`.
"""

from __future__ import annotations

from typing import Any

from autonomous.self_healing.alerts import HumanAlerts
from autonomous.self_healing.engine_state import Shared
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.history import HealingHistory
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.model import RecoveryStrategy, StrategyResult
from autonomous.self_healing.step_store import StepStore

__all__ = ["IncidentRecorder", "public"]

S = RecoveryStrategy


class IncidentRecorder:
    """Record attempts and outcomes of incidents."""

    def __init__(self, shared: Shared, memory: FailureMemory, history: HealingHistory,
                 classifier: ErrorClassifier, alerts: HumanAlerts, steps: StepStore) -> None:
        self.shared = shared
        self.ctx = shared.ctx
        self.memory = memory
        self.history = history
        self.classifier = classifier
        self.alerts = alerts
        self.steps = steps  # the step in flight, kept with the row: a restart resumes it

    def attempt(self, inc: Incident, res: StrategyResult, gate: str, took: float, *,
                 graph: bool = True) -> None:
        """Record one attempt; ``graph`` False when the Executor recorded its chain."""
        inc.attempts.append({"strategy": res.strategy.value, "gate": gate, "ok": res.ok,
                             "applicable": res.applicable,
                             "message": res.message, "took_s": round(took, 3),
                             "details": public(res.details)})
        if graph:
            inc.graph_attempt(self.ctx.graph, res, gate)
        self.ctx.bus.publish("healing.attempt", incident=inc.id, service=inc.service,
                             strategy=res.strategy.value, ok=res.ok, message=res.message)
        if res.strategy is not S.ALERT_HUMAN and gate in ("enforce", "approved") and \
                res.applicable:
            self.classifier.learn_from_error(inc.classification, {"strategy": res.strategy,
                                                                  "success": res.ok})

    def save(self, inc: Incident, state: str, message: str) -> None:
        inc.state, inc.message = state, message
        self.history.save(inc.row())
        self.steps.keep(inc)

    def finish(self, inc: Incident, state: str, message: str) -> None:
        now = self.ctx.clock
        inc.finished_at = now.now()
        inc.success = {"healed": True, "failed": False, "escalated": False}.get(state)
        if state == "healed":
            inc.mttr_s = round(now.monotonic() - inc.report.detected_mono, 3)
        used = inc.attempts[-1]["strategy"] if inc.attempts else None
        if inc.memory_id is not None:
            self.memory.update(inc.memory_id, recovery_used=used, success=inc.success,
                               notes=f"{state}: {message}"[:500], duration_s=inc.mttr_s)
        if state in ("skipped", "dry_run", "closed"):
            inc.graph_note(self.ctx.graph, f"{state}: {message}", {"state": state})
        self.save(inc, state, message)
        st = self.shared.state(inc.service)
        st.open_incident = inc.id if state in ("escalated", "failed") else None
        sig = inc.classification.signature
        if st.open_incident:
            st.escalated[sig] = self.ctx.clock.monotonic()
        elif state == "healed":
            st.escalated.clear()
        else:
            st.escalated.pop(sig, None)
        if state == "healed" and not (st.degraded or st.fallback):
            self.alerts.resolve(inc.service, f"healed by {used}")
        self.shared.pending.pop(inc.id, None)
        if state != "awaiting_approval":
            self.shared.incidents.pop(inc.id, None)
        if inc.pending is not None:  # closed without the awaited strategy: not needed now
            self.ctx.approvals.cancel(inc.pending["id"], f"incident {inc.id} {state}: {message}")
            inc.pending = None
        self.ctx.bus.publish("healing.completed", incident=inc.id, service=inc.service,
                             state=state, strategy=used, success=inc.success,
                             mttr_s=inc.mttr_s, error_type=inc.classification.error_type.value,
                             message=message)

    def alert_reason(self, inc: Incident) -> str:
        return f"{inc.classification.error_type.value}: {inc.report.source}"

    def alert_context(self, inc: Incident) -> dict[str, Any]:
        n = self.shared.policy()["alerts"]["log_tail_lines"]
        svc = self.ctx.subsystems.get("services")
        return {"incident": inc.id, "message": inc.report.message,
                "severity": inc.classification.severity.value,
                "classification": inc.classification.as_dict(), "attempts": inc.attempts,
                "evidence": inc.evidence, "logs_tail": svc.log_tail(inc.service, n) if svc
                else [], "graph_node": inc.nodes[0] if inc.nodes else None,
                "graph_link": f"/api/graph/why/{inc.last_node}" if inc.nodes else None,
                "state": self.shared.state(inc.service).as_dict(self.ctx.clock)}


def public(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy without bulky fields (the logs tail goes to alerts only)."""
    return {k: v for k, v in d.items() if k != "log_tail" and
            isinstance(v, (str, int, float, bool, type(None), list, dict))}
