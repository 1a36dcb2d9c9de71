"""Healing strategy learning (issue 12 item 6): per (failure signature, strategy) a Beta
success posterior, and a chooser by the lower credible bound.

Pure functions over plain values, so the healing controller's ``diff`` can call them with the
outcome counts it observed; nothing here reads a clock, the store or the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Posterior:
    """Beta(alpha, beta) posterior of a strategy's success rate for one failure signature."""

    signature: str
    strategy: str
    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def samples(self) -> int:
        return int(round(self.alpha + self.beta))


def posterior(
    signature: str,
    strategy: str,
    successes: int,
    failures: int,
    prior_alpha: float,
    prior_beta: float,
) -> Posterior:
    """Beta posterior from observed outcomes and a Beta(prior_alpha, prior_beta) prior."""
    if successes < 0 or failures < 0:
        raise ValueError("successes and failures must be >= 0")
    if prior_alpha <= 0 or prior_beta <= 0:
        raise ValueError("prior_alpha and prior_beta must be > 0")
    return Posterior(signature, strategy, prior_alpha + successes, prior_beta + failures)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """Inverse of ``beta_cdf`` by bisection (monotone, 1e-10 absolute)."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2.0


def lower_bound(p: Posterior, credibility: float) -> float:
    """Lower end of the one-sided ``credibility`` credible interval of the success rate."""
    if not 0.0 < credibility < 1.0:
        raise ValueError("credibility must be in (0, 1)")
    return beta_quantile(1.0 - credibility, p.alpha, p.beta)


def choose_strategy(
    signature: str,
    strategies: Sequence[str],
    outcomes: Mapping[tuple[str, str], tuple[int, int]],
    prior_alpha: float,
    prior_beta: float,
    credibility: float,
) -> tuple[str, float] | None:
    """The strategy with the highest lower credible bound for ``signature``.

    ``outcomes[(signature, strategy)] = (successes, failures)``; an unseen pair has the prior
    alone. Ties keep the order of ``strategies`` (the policy's order). Returns (strategy,
    bound), or None when there is no strategy to choose from.
    """
    best: tuple[str, float] | None = None
    for strategy in strategies:
        s, f = outcomes.get((signature, strategy), (0, 0))
        bound = lower_bound(posterior(signature, strategy, s, f, prior_alpha, prior_beta), credibility)
        if best is None or bound > best[1]:
            best = (strategy, bound)
    return best
