"""Proposal lifecycle rules, pure: which transition a proposal may take under a governance mode.

proposed → evaluated → (governed: awaiting_approval → approved | rejected)
                     | (growth: applied when within bounds) → baking → kept | reverted.
``governed`` never applies on its own; ``emergency_stop`` freezes learning (the decision is
recorded, nothing is done). The limits (bounds, step, bake slots, cooldown) come in as values
from policy; nothing here reads a clock or a file.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("proposed", "evaluated", "awaiting_approval", "approved", "rejected",
          "baking", "kept", "reverted")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "proposed": ("evaluated",),
    "evaluated": ("awaiting_approval", "baking", "rejected"),  # rejected: by a person, or
    # superseded (the value in force is no longer the one it was computed against)
    "awaiting_approval": ("approved", "rejected"),
    "approved": ("baking",),
    "baking": ("kept", "reverted"),
    "rejected": (),
    "kept": ("reverted",),
    "reverted": (),
}


@dataclass(frozen=True)
class GrowthLimits:
    max_step_fraction: float  # ≤ 0.25 by the issue
    max_baking: int
    cooldown_cycles: int


@dataclass(frozen=True)
class Decision:
    action: str  # "apply" | "await_approval" | "hold" | "frozen"
    reason: str


def can_transition(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, ())


def within_bounds(old: float, new: float, low: float, high: float, max_step_fraction: float) -> str | None:
    """None when the change is allowed, else why not."""
    if not low <= new <= high:
        return f"{new} outside declared bounds [{low}, {high}]"
    if old == 0:
        return None if new == 0 else "step from 0 has no relative size"
    if abs(new - old) / abs(old) > max_step_fraction + 1e-12:
        return f"step {abs(new - old) / abs(old):.0%} > {max_step_fraction:.0%}"
    return None


def blocked_by_cooldown(key: str, closed_at_cycle: dict[str, int], cycle: int, cooldown: int) -> bool:
    """A rejected or reverted change to ``key`` is not proposed again for ``cooldown`` cycles."""
    last = closed_at_cycle.get(key)
    return last is not None and cycle - last < cooldown


def decide(
    mode: str,
    old: float,
    new: float,
    low: float,
    high: float,
    baking_now: int,
    baking_keys: frozenset[str],
    key: str,
    limits: GrowthLimits,
) -> Decision:
    """What to do with an evaluated proposal under ``mode``."""
    if mode == "emergency_stop":
        return Decision("frozen", "emergency_stop: learning frozen (recorded, not done)")
    if mode == "governed":
        return Decision("await_approval", "governed: a person approves every change")
    if mode != "growth":
        return Decision("hold", f"unknown governance mode {mode!r}")
    why = within_bounds(old, new, low, high, limits.max_step_fraction)
    if why:
        return Decision("hold", why)
    if key in baking_keys:
        return Decision("hold", f"{key} already baking (one change per parameter per bake window)")
    if baking_now >= limits.max_baking:
        return Decision("hold", f"{baking_now} changes baking, at most {limits.max_baking}")
    return Decision("apply", "growth: within bounds")
