"""A learned change not yet proposed: what every proposal source (alert tuning, the
performance optimizer) hands the learning cycle, which records its chain and creates the
proposal the same way for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonomous.learning.proposal_patch import Patch

__all__ = ["Candidate"]


@dataclass(frozen=True)
class Candidate:
    source: str  # the proposal's source, e.g. "feedback_loop.alert_tuning"
    observed: str  # the observation node's label: what was seen
    rule: str  # the decision's rule
    title: str  # the proposal's title
    patch: Patch
    low: float  # the bounds the patched value must stay within
    high: float
    evidence: dict[str, Any]
    evaluation: dict[str, Any]
    guard: dict[str, Any]
