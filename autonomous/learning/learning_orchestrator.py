"""LearningOrchestrator: one learning cycle turns feedback into findings, action items and
proposals (data the learning controller reconciles), on a schedule.

A cycle never writes the tree: it records proposals (proposed → evaluated, with their offline
evaluation beside the value in force) and triggers the controller. In ``emergency_stop`` the
cycle is frozen: recorded (a ``learning_cycle`` graph node saying so), nothing proposed. A
change to a parameter that was rejected or reverted is not proposed again for
``cooldown_cycles`` cycles, nor while another change to it is open.

``export_learned_knowledge`` / ``import_learned_knowledge``: the learning tables and the cycle
counter as one JSON-able document; importing an export and exporting again gives the same
document.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.clock import iso
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.learning.feedback_loop import FeedbackLoop
from autonomous.learning.optimizer_proposals import optimizer_candidates
from autonomous.learning.proposal_rules import blocked_by_cooldown
from autonomous.learning.proposals import ProposalStore

__all__ = ["EXPORT_TABLES", "LearningOrchestrator"]

log = logging.getLogger("atlas.learning")

EXPORT_TABLES = ("learning_proposals", "learning_proposal_events", "learning_feedback",
                 "learning_route_decisions")
EXPORT_VERSION = 1


class LearningOrchestrator:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.proposals = ProposalStore(ctx.store, ctx.clock)
        self.feedback = FeedbackLoop(ctx.store, ctx.graph, ctx.clock)
        self._stop = asyncio.Event()
        self.last_cycle: dict[str, Any] | None = None

    def _policy(self) -> dict[str, Any]:
        return self.ctx.policy()["learning"]

    def run_learning_cycle(self) -> dict[str, Any]:
        """One cycle: analyse feedback, propose, record. Returns what it did."""
        cycle = int(self.ctx.store.kv_get("learning.cycle", 0) or 0) + 1
        self.ctx.store.kv_set("learning.cycle", cycle)
        mode = self.ctx.governance.mode
        gen = self.ctx.desired.current
        now = self.ctx.clock.now()
        resilience = self.ctx.subsystems.get("resilience")
        survival_off = resilience is not None and "learning" in resilience.get_disabled_features()
        if mode == "emergency_stop" or gen is None or survival_off:
            why = ("no generation in force" if gen is None else
                   "emergency_stop: learning frozen (recorded, not done)"
                   if mode == "emergency_stop" else
                   "survival mode disables learning (recorded, not done)")
            node = self.ctx.graph.add_entity("learning_cycle", f"cycle {cycle}: frozen",
                                             attrs={"cycle": cycle, "mode": mode,
                                                    "frozen": True, "reason": why})
            self.last_cycle = {"cycle": cycle, "ts": iso(now), "mode": mode, "frozen": True,
                               "reason": why, "proposed": [], "graph_node": node}
            return self.last_cycle
        policy = self._policy()
        acks = self.feedback.harvest_acks()
        findings = self.feedback.analyze_feedback(policy)
        items = self.feedback.generate_action_items(policy)
        rules = self.ctx.policy().get("telemetry", {}).get("alerting", {}).get("rules", [])
        candidates = self.feedback.alert_candidates(self.ctx.root, policy, rules)
        open_keys = {p.key for p in self.proposals.open()}
        closed = self.proposals.closed_at_cycle()
        cooldown = int(policy["proposals"]["cooldown_cycles"])
        proposed, skipped = [], []
        cycle_node = self.ctx.graph.add_entity(
            "learning_cycle", f"cycle {cycle}", attrs={"cycle": cycle, "mode": mode,
                                                      "generation": gen.number,
                                                      "findings": len(findings)})
        opt_candidates, opt_skipped = optimizer_candidates(self.ctx)
        skipped.extend(opt_skipped)
        for c in [*candidates, *opt_candidates]:
            key = f"{c.patch.file}#{'.'.join(map(str, c.patch.path))}"
            if key in open_keys:
                skipped.append({"key": key, "reason": "a change to it is open"})
                continue
            if blocked_by_cooldown(key, closed, cycle, cooldown):
                skipped.append({"key": key, "reason": f"rejected or reverted at cycle "
                                f"{closed[key]}; cooldown {cooldown} cycles"})
                continue
            with self.ctx.store.transaction():
                ids = self.ctx.graph.record_chain(
                    [("observation", c.observed, {"evidence": c.evidence}),
                     ("decision", f"propose {c.title}",
                      {"rule": c.rule, "evaluation": c.evaluation})],
                    context={"under_generation": self.ctx.graph.ensure("generation",
                                                                       str(gen.number))})
                self.ctx.graph.add_relation(cycle_node, "led_to", ids[0])
                p = self.proposals.create(
                    source=c.source, title=c.title, patch=c.patch, generation=gen.number,
                    cycle=cycle, evidence={**c.evidence, "graph": ids}, guard=c.guard,
                    low=c.low, high=c.high)
                self.ctx.graph.add_relation(ids[-1], "about", self.ctx.graph.ensure(
                    "resource", f"Proposal/{p.id}"))
                self.proposals.transition(p.id, "evaluated", actor="learning",
                                          reason="evaluated offline beside the value in force",
                                          evaluation=c.evaluation)
            proposed.append(p.id)
            open_keys.add(key)
        self.last_cycle = {"cycle": cycle, "ts": iso(now), "mode": mode, "frozen": False,
                           "acks_harvested": acks, "findings": findings,
                           "action_items": items, "proposed": proposed, "skipped": skipped,
                           "graph_node": cycle_node}
        if proposed:
            self.ctx.bus.publish("learning.proposals", cycle=cycle, ids=proposed)
        return self.last_cycle

    def _interval(self) -> float:
        gen = self.ctx.desired.current
        settings = gen.tree.config.controllers.get("learning") if gen is not None else None
        return float(settings.interval_seconds) if settings is not None else 300.0

    async def start_continuous_learning(self) -> None:
        """A cycle every ``learning.interval_seconds`` until :meth:`stop`; then the controller
        is triggered to reconcile what the cycle proposed."""
        while not self._stop.is_set():
            await self.ctx.clock.sleep(self._interval())
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.run_learning_cycle)
            except Exception:  # noqa: BLE001 - a failed cycle is logged; the next one runs
                log.exception("learning cycle failed")
            self.ctx.trigger("learning")

    def stop(self) -> None:
        self._stop.set()

    def get_learning_insights(self) -> dict[str, Any]:
        policy = self._policy()
        by_state: dict[str, int] = {}
        for p in self.proposals.all():
            by_state[p.state] = by_state.get(p.state, 0) + 1
        return {"cycle": int(self.ctx.store.kv_get("learning.cycle", 0) or 0),
                "mode": self.ctx.governance.mode,
                "findings": self.feedback.analyze_feedback(policy),
                "improvement_areas": self.feedback.identify_improvement_areas(policy),
                "action_items": self.feedback.generate_action_items(policy),
                "proposals": by_state, "last_cycle": self.last_cycle}

    # -- export / import ----------------------------------------------------------------------
    def export_learned_knowledge(self) -> dict[str, Any]:
        tables = {t: [dict(r) for r in self.ctx.store.query(f"SELECT * FROM {t} ORDER BY 1")]
                  for t in EXPORT_TABLES}
        return {"version": EXPORT_VERSION,
                "cycle": int(self.ctx.store.kv_get("learning.cycle", 0) or 0),
                "tables": tables}

    def import_learned_knowledge(self, doc: dict[str, Any]) -> dict[str, int]:
        """Replace the learned knowledge with ``doc`` (an export); counts per table."""
        if doc.get("version") != EXPORT_VERSION or not isinstance(doc.get("tables"), dict):
            raise _invalid("version", f"expected {EXPORT_VERSION} with 'tables'")
        unknown = set(doc["tables"]) - set(EXPORT_TABLES)
        if unknown:
            raise _invalid(f"tables.{sorted(unknown)[0]}", "not a learning table")
        counts = {}
        with self.ctx.store.transaction():
            for t in reversed(EXPORT_TABLES):
                self.ctx.store.execute(f"DELETE FROM {t}")
            for t in EXPORT_TABLES:
                rows = doc["tables"].get(t, [])
                cols = {c["name"] for c in self.ctx.store.query(f"PRAGMA table_info({t})")}
                for i, row in enumerate(rows):
                    bad = set(row) - cols
                    if bad:
                        raise _invalid(f"tables.{t}.{i}.{sorted(bad)[0]}", "unknown column")
                    names = sorted(row)
                    self.ctx.store.execute(
                        f"INSERT INTO {t}({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", [row[n] for n in names])
                counts[t] = len(rows)
            self.ctx.store.kv_set("learning.cycle", int(doc.get("cycle", 0)))
        return counts


def _invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed([Problem("learned-knowledge", 0, path, message)])
