"""The ladder steps in flight, kept in the store: an operator restart resumes them.

Each incident whose step is in flight (``Incident.run``) is written under
``healing.step.<id>`` when the incident's row is saved, and removed once it has no step in
flight (settled, awaiting approval, finished). A new engine :meth:`StepStore.load` s them: the
incident comes back open with its step, whose verification starts again from what the new
process observes (monotonic times do not survive a restart; the pid the step must replace and
the intent it asked for do) — the healing controller's passes observe and settle it as
before.
"""

from __future__ import annotations

import json
from typing import Any

from autonomous.core.clock import Clock
from autonomous.self_healing.incident import Incident
from autonomous.self_healing.ladder_steps import StepRun
from autonomous.self_healing.model import (Classification, ErrorReport, ErrorType,
                                           RecoveryStrategy, Severity)
from autonomous.self_healing.verify import Watch
from autonomous.store import Store

__all__ = ["StepStore"]

PREFIX = "healing.step."


class StepStore:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def keep(self, inc: Incident) -> None:
        """Write (a step in flight) or remove (none) the incident's step."""
        if inc.run is None:
            self.store.execute("DELETE FROM kv WHERE key=?", (PREFIX + inc.id,))
            return
        # JSON as the history row stores it (a value it cannot encode is kept as its text)
        self.store.kv_set(PREFIX + inc.id, json.loads(json.dumps(_snapshot(inc, inc.run),
                                                                 default=str)))

    def load(self) -> list[Incident]:
        """The incidents whose step was in flight when the last engine stopped."""
        out = []
        for row in self.store.query("SELECT value FROM kv WHERE key LIKE ?", (PREFIX + "%",)):
            out.append(self._incident(json.loads(row["value"])))
        return out

    def _incident(self, d: dict[str, Any]) -> Incident:
        now = self.clock.monotonic()
        r, c = d["report"], d["classification"]
        report = ErrorReport(r["service"], r["source"], r["message"], None, r["context"],
                             r["detected_at"], now)
        cls = Classification(ErrorType(c["error_type"]), Severity(c["severity"]),
                             c["recoverable"], c["rule"],
                             tuple(RecoveryStrategy(s) for s in c["strategies"]),
                             c["signature"], c["learned"])
        inc = Incident(report, cls, [RecoveryStrategy(s) for s in d["ladder"]], d["mode"],
                       d["generation"], d["evidence"], d["id"], d["step"], d["attempts"],
                       forced=d["forced"], memory_id=d["memory_id"], nodes=d["nodes"],
                       planned=d["planned"])
        s = d["run"]
        run = StepRun(RecoveryStrategy(s["strategy"]), s["service"], now, s["gate"],
                      s["decision"], d["id"], intent=s["intent"], phase=s["phase"],
                      attempt=s["attempt"], next_at=now, order=s["order"], done=s["done"],
                      details=s["details"], counted=s["counted"])
        if s["watch"]:  # verified again from now on: a new process, not the one it replaces
            run.watch = Watch(now, s["not_pid"], want_hash=s.get("want_hash"))
        inc.run = run
        return inc


def _snapshot(inc: Incident, run: StepRun) -> dict[str, Any]:
    r = inc.report
    return {"id": inc.id, "report": {"service": r.service, "source": r.source,
                                     "message": r.message, "detected_at": r.detected_at,
                                     "context": {k: v for k, v in r.context.items()
                                                 if isinstance(v, (str, int, float, bool,
                                                                   type(None), list, dict))}},
            "classification": inc.classification.as_dict(),
            "ladder": [s.value for s in inc.ladder], "mode": inc.mode,
            "generation": inc.generation, "evidence": inc.evidence, "step": inc.step,
            "attempts": inc.attempts, "forced": inc.forced, "memory_id": inc.memory_id,
            "nodes": inc.nodes, "planned": inc.planned,
            "run": {"strategy": run.strategy.value, "service": run.service, "gate": run.gate,
                    "decision": run.decision, "intent": run.intent, "phase": run.phase,
                    "attempt": run.attempt, "order": run.order, "done": run.done,
                    "details": run.details, "counted": run.counted,
                    "watch": run.watch is not None,
                    "not_pid": run.watch.not_pid if run.watch is not None else None,
                    "want_hash": run.watch.want_hash if run.watch is not None else None}}
