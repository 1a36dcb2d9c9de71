"""One incident: a failure of a service, its classification, and every attempt to heal it.

The incident writes its causal chain into the knowledge graph as it goes —
``error → decision → action → outcome [→ action → outcome …]`` — linked to the service, the
generation and the governance mode in force, and its row into the healing history.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.self_healing.model import (
    Classification,
    ErrorReport,
    RecoveryStrategy,
    StrategyResult,
)

__all__ = ["Incident"]


@dataclass
class Incident:
    report: ErrorReport
    classification: Classification
    ladder: list[RecoveryStrategy]
    mode: str
    generation: int | None
    evidence: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    step: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    state: str = "open"
    message: str = ""
    success: bool | None = None
    mttr_s: float | None = None
    finished_at: float | None = None
    memory_id: int | None = None
    nodes: list[str] = field(default_factory=list)  # graph chain so far
    pending: dict[str, Any] | None = None  # approval awaited: {id, hash, strategy, gate}
    step_decision: str | None = None  # the Executor's decision node of the step running now
    repeats: int = 0  # the same fault seen again while this incident was open
    forced: str | None = None  # a human's strategy for this incident (tried first)
    choices: list[dict[str, Any]] = field(default_factory=list)  # why each step was chosen
    planned: dict[str, Any] | None = None  # the planned action of the current step
    pending_at: float | None = None  # monotonic time its approval began to be awaited
    # the step in flight (``ladder_steps.StepRun``): started, its verification observed by
    # the healing controller's passes until the diff settles it
    run: Any = None

    @property
    def service(self) -> str:
        return self.report.service

    @property
    def last_node(self) -> str | None:
        return self.nodes[-1] if self.nodes else None

    def graph_start(self, g: KnowledgeGraph, finding: dict[str, Any] | None = None) -> None:
        """Record the error and the decision (classification, ladder, memory's advice); a
        health finding about the service (``health.finding``) leads to the error."""
        about = g.ensure("resource", f"Service/{self.service}")
        ctx = {"about": about, "under_mode": g.ensure("mode", self.mode)}
        if self.generation is not None:
            ctx["under_generation"] = g.ensure("generation", str(self.generation))
        c = self.classification
        self.nodes = g.record_chain(
            [("error", f"{self.service}: {self.report.message}",
              {"incident": self.id, "source": self.report.source, **self.evidence}),
             ("decision", (f"heal {self.service}: {c.error_type.value} → "
                           f"{' / '.join(s.value for s in self.ladder) or 'nothing to do'}"),
              {"incident": self.id, **c.as_dict(),
               "controller": "healing"})],
            context=ctx)
        node = (finding or {}).get("graph_node")
        if isinstance(node, str):
            self.evidence["health_finding"] = {k: finding.get(k) for k in (
                "type", "severity", "message", "metric") if finding and k in finding}
            with contextlib.suppress(KeyError):  # pruned by retention meanwhile
                g.add_relation(node, "led_to", self.nodes[0])

    def graph_attempt(self, g: KnowledgeGraph, result: StrategyResult, gate: str) -> None:
        """Record one action and its outcome after the previous step."""
        about = g.ensure("resource", f"Service/{self.service}")
        ids = g.record_chain(
            [("action", f"{result.strategy.value} Service/{self.service}",
              {"incident": self.id, "strategy": result.strategy.value, "gate": gate}),
             ("outcome", f"{'ok' if result.ok else 'failed'}: {result.message}"[:300],
              {"incident": self.id, **result.as_dict()})],
            context={"about": about})
        if self.nodes:
            g.add_relation(self.nodes[-1], "chose" if len(self.nodes) == 2 else "led_to", ids[0])
        self.nodes += ids

    def graph_link(self, g: KnowledgeGraph, chain: list[str]) -> None:
        """Continue the incident's chain with the Executor's record of one step
        (observation → decision → action → outcome)."""
        if not chain:
            return
        if self.nodes and self.nodes[-1] != chain[0]:
            g.add_relation(self.nodes[-1], "chose" if len(self.nodes) == 2 else "led_to",
                           chain[0])
        self.nodes += [n for n in chain if n not in self.nodes]

    def graph_note(self, g: KnowledgeGraph, label: str, attrs: dict[str, Any]) -> None:
        """Record a non-action outcome (awaiting approval, skipped, recovered)."""
        about = g.ensure("resource", f"Service/{self.service}")
        node = g.record_chain([("outcome", label[:300], {"incident": self.id, **attrs})],
                              context={"about": about})[0]
        if self.nodes:
            g.add_relation(self.nodes[-1], "resulted_in", node)
        self.nodes.append(node)

    def row(self) -> dict[str, Any]:
        """The healing-history row."""
        c = self.classification
        last = self.attempts[-1] if self.attempts else {}
        run = self.run.status() if self.run is not None else None
        return {"id": self.id, "service": self.service, "source": self.report.source,
                "error_type": c.error_type.value, "severity": c.severity.value, "rule": c.rule,
                "error_signature": c.signature,
                "strategy": run["strategy"] if run else last.get("strategy"),
                "gate": run["gate"] if run else last.get("gate"), "step": run, "state": self.state, "success": self.success,
                "message": self.message or self.report.message,
                "detected_at": self.report.detected_at, "finished_at": self.finished_at,
                "mttr_s": self.mttr_s, "attempts": self.attempts, "graph_node": self.last_node,
                "mode": self.mode, "generation": self.generation}
