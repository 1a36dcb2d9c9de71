"""Pure decisions of the healing controller about strategies (issue 12 item 6).

``next_step``: the strategy of an incident's next step — the untried strategy of its ladder
with the highest lower credible bound of success for the incident's failure signature (a Beta
posterior over the outcome counts observed in the failure memory; prior and credibility from
``healing.learning``); the ladder's order breaks ties, so pairs without data keep the rule's
order. ALERT_HUMAN stays the ladder's last resort, never ranked against remediations.

``brake``: the global brake — more than ``healing.brake.max_services_in_remediation`` services
in remediation at once (an open incident, back-off, isolation) means something wider than one
service is wrong; the next step of every incident is then ALERT_HUMAN, and the diff plans one
escalation for the whole (see ``controllers/healing.py``).

No clock, no store, no I/O: values in, decisions out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autonomous.learning.strategy_posterior import choose_strategy

__all__ = ["ALERT", "Learning", "Step", "brake", "next_step"]

ALERT = "ALERT_HUMAN"

# (signature, strategy) → (successes, failures)
Outcomes = Mapping[tuple[str, str], tuple[int, int]]


@dataclass(frozen=True)
class Learning:
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    credibility: float = 0.8


@dataclass(frozen=True)
class Step:
    strategy: str
    bound: float | None  # lower credible bound of success; None for ALERT_HUMAN / forced
    why: str


def brake(in_remediation: Iterable[str], limit: int) -> tuple[str, ...]:
    """The services in remediation when there are more than ``limit`` of them, else ()."""
    names = tuple(sorted(set(in_remediation)))
    return names if len(names) > limit else ()


def next_step(signature: str, remaining: tuple[str, ...], outcomes: Outcomes,
              learning: Learning, *, forced: str | None = None,
              braked: tuple[str, ...] = ()) -> Step:
    """The strategy to try next among ``remaining`` (the untried rest of the ladder, in its
    order). ``forced`` (a human's choice, still untried) goes first; the brake turns every
    remaining remediation into ALERT_HUMAN."""
    if braked:
        return Step(ALERT, None, f"global brake: {len(braked)} services in remediation at "
                    f"once ({', '.join(braked)}): a human decides, healing remediates no more")
    if forced is not None and forced in remaining:
        return Step(forced, None, f"{forced} forced by a human")
    candidates = [s for s in remaining if s != ALERT]
    if not candidates:
        return Step(ALERT, None, "every remediation of the ladder was tried")
    best = choose_strategy(signature, candidates, outcomes, learning.prior_alpha,
                           learning.prior_beta, learning.credibility)
    assert best is not None  # candidates is not empty
    strategy, bound = best
    s, f = outcomes.get((signature, strategy), (0, 0))
    return Step(strategy, bound, f"{strategy}: lower {learning.credibility:.0%} credible bound "
                f"of success {bound:.3f} for this signature ({s} healed, {f} failed) — the "
                f"highest of {', '.join(candidates)}")
