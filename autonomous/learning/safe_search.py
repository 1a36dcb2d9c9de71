"""The math under the performance optimizer: a box, a Gaussian-process surrogate per metric,
and the choice of the next point among candidates predicted safe.

Pure numpy; every random draw comes from the generator passed in. Metrics are modelled
normalized: a constraint as ``measured / limit - 1`` (≤ 0 is safe) with prior mean 0, i.e.
"at the limit" where nothing was measured, so the safe region grows only outward from safe
measurements (the SafeOpt idea); the objective as the relative gain over the first trial
(the value in force), signed so that larger is better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from autonomous.resources.policy.learning_tuning import OptimizerPolicy, ParameterBox

__all__ = ["Box", "GaussianProcess", "Pick", "box_around", "pick_next", "smoothed"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Box:
    """Per parameter ``(low, high, integer)``: the region one cycle may try."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    integer: tuple[bool, ...]

    def to_unit(self, values: Mapping[str, float]) -> Array:
        lo, hi = np.array(self.low), np.array(self.high)
        x = np.array([float(values[n]) for n in self.names])
        return np.asarray((x - lo) / np.where(hi > lo, hi - lo, 1.0), dtype=np.float64)

    def from_unit(self, u: Array) -> Array:
        """Unit points (rows) to parameter values, integers rounded, kept inside the box."""
        lo, hi = np.array(self.low), np.array(self.high)
        x = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        ints = np.array(self.integer)
        x[:, ints] = np.clip(np.round(x[:, ints]), np.ceil(lo[ints]), np.floor(hi[ints]))
        return np.asarray(x, dtype=np.float64)

    def snap(self, u: Array) -> Array:
        """Unit points moved onto the values that would really be tried (integers)."""
        lo, hi = np.array(self.low), np.array(self.high)
        x = self.from_unit(u)
        return np.asarray((x - lo) / np.where(hi > lo, hi - lo, 1.0), dtype=np.float64)

    def contains(self, values: Mapping[str, float]) -> bool:
        return all(lo - 1e-9 <= float(values[n]) <= hi + 1e-9
                   for n, lo, hi in zip(self.names, self.low, self.high))


def box_around(params: Mapping[str, ParameterBox], last_good: Mapping[str, float]) -> Box:
    """The declared box: ``last_good ± box_fraction·(upper - lower)``, within the hard bounds."""
    names = tuple(sorted(params))
    low, high = [], []
    for n in names:
        p = params[n]
        if n not in last_good:
            raise ValueError(f"parameter {n!r} has no last good value")
        v = float(last_good[n])
        if not p.lower <= v <= p.upper:
            raise ValueError(f"parameter {n!r}: last good value {v} is outside its bounds "
                             f"[{p.lower}, {p.upper}]")
        half = p.box_fraction * (p.upper - p.lower)
        low.append(max(p.lower, v - half))
        high.append(min(p.upper, v + half))
    return Box(names, tuple(low), tuple(high), tuple(params[n].integer for n in names))


class GaussianProcess:
    """Zero-mean GP, Matérn 5/2 kernel with fixed length scale, prior sd and noise."""

    def __init__(self, x: Array, y: Array, *, length: float, sd: float, noise: float) -> None:
        self.x, self.length, self.sd = x, length, sd
        k = self._k(x, x) + noise ** 2 * np.eye(len(x))
        self.chol = np.linalg.cholesky(k)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, y))

    def _k(self, a: Array, b: Array) -> Array:
        d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0)) / self.length
        s5 = np.sqrt(5.0) * d
        return np.asarray(self.sd ** 2 * (1 + s5 + 5.0 * d ** 2 / 3.0) * np.exp(-s5),
                          dtype=np.float64)

    def predict(self, u: Array) -> tuple[Array, Array]:
        ks = self._k(u, self.x)
        mean = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.maximum(self.sd ** 2 - (v ** 2).sum(0), 1e-12)
        return np.asarray(mean, dtype=np.float64), np.asarray(np.sqrt(var), dtype=np.float64)


@dataclass(frozen=True)
class Pick:
    unit: Array | None  # None: no candidate is predicted safe
    objective: tuple[float, float]  # predicted (mean, sd) of the relative gain
    worst_constraint: float  # largest mean + beta·sd over constraints (≤ 0 is safe)


def pick_next(policy: OptimizerPolicy, box: Box, x: Array, objective: Array,
              constraints: Sequence[Array], rng: np.random.Generator,
              best: Array) -> Pick:
    """The candidate with the highest upper confidence bound on the objective among those
    whose every constraint's ``mean + safety_beta·sd`` is ≤ 0; candidates are uniform in the
    box plus a local cloud around the best safe point; points already tried are left out."""
    dims = x.shape[1]
    n = policy.candidates
    cand = box.snap(np.vstack([rng.random((n, dims)),
                               np.clip(best + rng.normal(0.0, 0.08, (n // 2, dims)), 0.0, 1.0)]))
    worst = np.full(len(cand), -np.inf)
    for y in constraints:
        gp = GaussianProcess(x, y, length=policy.length_scale, sd=policy.constraint_sd,
                             noise=policy.noise_sd)
        m, s = gp.predict(cand)
        worst = np.maximum(worst, m + policy.safety_beta * s)
    tried = (np.abs(cand[:, None, :] - x[None, :, :]).max(-1) < 1e-6).any(1)
    safe = (worst <= 0.0) & ~tried
    if not safe.any():
        return Pick(None, (0.0, 0.0), float(worst.min()))
    gp_o = GaussianProcess(x, objective, length=policy.length_scale, sd=policy.constraint_sd,
                           noise=policy.noise_sd)
    mo, so = gp_o.predict(cand[safe])
    i = int(np.argmax(mo + policy.explore_kappa * so))
    return Pick(cand[safe][i], (float(mo[i]), float(so[i])), float(worst[safe][i]))


def smoothed(policy: OptimizerPolicy, x: Array, objective: Array) -> Array:
    """Posterior mean of the objective at the tried points (noise averaged out)."""
    gp = GaussianProcess(x, objective, length=policy.length_scale, sd=policy.constraint_sd,
                         noise=policy.noise_sd)
    return gp.predict(x)[0]
