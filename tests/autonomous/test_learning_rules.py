"""Proposal lifecycle rules per governance mode."""

from __future__ import annotations

from autonomous.learning.proposal_rules import (
    GrowthLimits,
    blocked_by_cooldown,
    can_transition,
    decide,
)

LIM = GrowthLimits(max_step_fraction=0.25, max_baking=1, cooldown_cycles=3)


def test_modes() -> None:
    args = (0.8, 0.9, 0.5, 1.0, 0, frozenset(), "alerts.cpu", LIM)
    assert decide("governed", *args).action == "await_approval"
    assert decide("emergency_stop", *args).action == "frozen"
    assert decide("growth", *args).action == "apply"


def test_growth_guardrails() -> None:
    assert "bounds" in decide("growth", 0.8, 1.2, 0.5, 1.0, 0, frozenset(), "k", LIM).reason
    assert "step" in decide("growth", 0.7, 0.9, 0.5, 1.0, 0, frozenset(), "k", LIM).reason
    assert decide("growth", 0.8, 1.0, 0.5, 1.0, 0, frozenset(), "k", LIM).action == "apply"  # 25 % exactly
    assert decide("growth", 0.8, 0.9, 0.5, 1.0, 0, frozenset({"k"}), "k", LIM).action == "hold"
    assert decide("growth", 0.8, 0.9, 0.5, 1.0, 1, frozenset({"j"}), "k", LIM).action == "hold"


def test_transitions_and_cooldown() -> None:
    assert can_transition("evaluated", "awaiting_approval")
    assert not can_transition("rejected", "baking")
    assert not can_transition("proposed", "baking")
    closed = {"k": 10}
    assert blocked_by_cooldown("k", closed, 12, 3)
    assert not blocked_by_cooldown("k", closed, 13, 3)
    assert not blocked_by_cooldown("j", closed, 12, 3)
