"""The PerformanceOptimizer's history for ``GET /api/learning/optimizations`` (``history``):
one row per proposal the optimizer made, newest first, with the value in force beside the
value proposed, its lifecycle state, its verdict (``kept`` / ``reverted`` / ``rejected``, or
None while open) and the reason, and the target's retained trials (the persisted ones: the
current optimization cycle's, at most ``trials_per_cycle``)."""

from __future__ import annotations

from typing import Any

from autonomous.core.clock import iso
from autonomous.learning.proposals import Proposal

__all__ = ["SOURCE", "VERDICTS", "optimization_history"]

SOURCE = "performance_optimizer"
VERDICTS = ("kept", "reverted", "rejected")


def optimization_history(proposals: list[Proposal], trials: list[dict[str, Any]]
                         ) -> list[dict[str, Any]]:
    out = []
    for p in sorted((p for p in proposals if p.source == SOURCE),
                    key=lambda p: (p.created_at, p.id), reverse=True):
        target = str(p.evidence.get("target", ""))
        out.append({
            "proposal_id": p.id, "target": target,
            "parameter": str(p.evidence.get("parameter", "")), "key": p.key,
            "file": p.patch.file, "value_in_force": p.patch.old, "proposed": p.patch.new,
            "suggested": p.evidence.get("suggested"), "state": p.state,
            "verdict": p.state if p.state in VERDICTS else None, "reason": p.reason,
            "evaluation": p.evaluation, "trials_seen": p.evidence.get("trials"),
            "trials": [t for t in trials if t.get("target") == target],
            "created_at": iso(p.created_at or None),
            "applied_at": iso(p.applied_at),
            "apply_commit": p.apply_commit, "revert_commit": p.revert_commit})
    return out
