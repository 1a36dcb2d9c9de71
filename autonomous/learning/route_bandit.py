"""Thompson sampling per query class for the Neural Router, pure given a seeded RNG.

Each (query class, model) has a Beta posterior of success; a draw minus the model's cost
penalty (from policy) scores it. Only the models allowed now (circuit breakers, health) take
part, so an outage removes a model from the choice without feeding its failures into the
quality estimate. The propensity of the choice (the probability Thompson sampling picks that
model) is estimated from ``propensity_draws`` further draws and returned for logging.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class RouteChoice:
    model: str
    propensity: float


def _pick(rng: random.Random, models: Sequence[str], stats: Mapping[str, tuple[float, float]],
          cost: Mapping[str, float], prior: tuple[float, float]) -> str:
    best, best_score = models[0], float("-inf")
    for m in models:
        s, f = stats.get(m, (0, 0))
        score = rng.betavariate(prior[0] + s, prior[1] + f) - cost.get(m, 0.0)
        if score > best_score:
            best, best_score = m, score
    return best


def choose(
    rng: random.Random,
    allowed: Sequence[str],
    stats: Mapping[str, tuple[float, float]],
    cost: Mapping[str, float],
    prior: tuple[float, float],
    propensity_draws: int,
) -> RouteChoice | None:
    """``stats[model] = (successes, failures)`` for one query class; None when none allowed."""
    if not allowed:
        return None
    model = _pick(rng, allowed, stats, cost, prior)
    hits = sum(_pick(rng, allowed, stats, cost, prior) == model for _ in range(propensity_draws))
    return RouteChoice(model, max(hits, 1) / (propensity_draws + 1))
