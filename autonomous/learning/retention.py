"""Pruning the operator's own growing tables, from the ``retention`` policy section.

The knowledge graph (whole chains, by when their newest node was last seen:
:meth:`KnowledgeGraph.prune`), ``health_reports``, ended ``health_anomalies``, approvals that
are no longer pending, learning feedback and logged route decisions, and all but the newest
``generations_keep`` generations (never the one in force), finished rollouts with their events
and closed update proposals (``autonomous/evolution/store.py``, ``proposals.py``). Learned
proposals are kept: one row per learned change, the audit trail of what changed the tree and
why.
:meth:`Retention.maybe_run` runs it at most every ``interval_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock
from autonomous.evolution.proposals import ProposalStore
from autonomous.evolution.store import RolloutStore
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.store import Store

__all__ = ["Retention"]

_DAY = 86400.0


class Retention:
    def __init__(self, store: Store, graph: KnowledgeGraph, clock: Clock,
                 policy: Callable[[], dict[str, Any]],
                 current_generation: Callable[[], int | None]) -> None:
        self.store = store
        self.graph = graph
        self.clock = clock
        self.policy = policy
        self.current_generation = current_generation
        self._last: float | None = None
        self.last_run: dict[str, int] | None = None

    def maybe_run(self) -> dict[str, int] | None:
        """Prune if ``interval_seconds`` passed since the last run; the counts deleted."""
        now = self.clock.now()
        every = float(self.policy()["retention"]["interval_seconds"])
        if self._last is not None and now - self._last < every:
            return None
        return self.run(now)

    def run(self, now: float | None = None) -> dict[str, int]:
        now = self.clock.now() if now is None else now
        p = self.policy()["retention"]
        self._last = now
        deleted = dict(self.graph.prune(now - p["graph_days"] * _DAY))
        with self.store.transaction():
            deleted["health_reports"] = self.store.execute(
                "DELETE FROM health_reports WHERE ts < ?",
                (now - p["health_reports_days"] * _DAY,)).rowcount
            deleted["health_anomalies"] = self.store.execute(
                "DELETE FROM health_anomalies WHERE end_ts IS NOT NULL AND last_seen < ?",
                (now - p["health_anomalies_days"] * _DAY,)).rowcount
            deleted["approvals"] = self.store.execute(
                "DELETE FROM approvals WHERE state != 'pending' "
                "AND COALESCE(decided_at, expires_at) < ?",
                (now - p["approvals_days"] * _DAY,)).rowcount
            deleted["learning_feedback"] = self.store.execute(
                "DELETE FROM learning_feedback WHERE ts < ?",
                (now - p["learning_feedback_days"] * _DAY,)).rowcount
            deleted["learning_route_decisions"] = self.store.execute(
                "DELETE FROM learning_route_decisions WHERE ts < ?",
                (now - p["route_decisions_days"] * _DAY,)).rowcount
            deleted["evolution_rollouts"] = RolloutStore(self.store).prune(
                now - p["evolution_rollouts_days"] * _DAY)
            deleted["evolution_proposals"] = ProposalStore(self.store).prune(
                now - p["evolution_proposals_days"] * _DAY)
            current = self.current_generation()
            deleted["generations"] = self.store.execute(
                "DELETE FROM generations WHERE generation NOT IN (SELECT generation FROM "
                "generations ORDER BY generation DESC LIMIT ?) AND generation != ?",
                (int(p["generations_keep"]), -1 if current is None else current)).rowcount
        self.last_run = deleted
        return deleted
