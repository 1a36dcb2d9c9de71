"""RouteOptimizer for NEXUS's Neural Router (issue 12 item 3), pure given a seed.

A contextual bandit: the context is the query class (e.g. the MMLU subject), the arms are
the models. :func:`autonomous.learning.route_bandit.choose` picks by Thompson sampling on a
Beta posterior of success minus ``cost_lambda × cost`` (``policies/learning_tuning.yaml``,
section ``learning_routing``). A class borrows ``prior_strength`` pseudo-observations from the
model's success rate pooled over all classes, so a new class starts from what the models do
elsewhere instead of from a coin.

Which models may be chosen is passed in per query (circuit breakers, health): an outage
removes a model from the choice, and an outcome marked ``error`` (the model failed to
answer) feeds latency and error counts, never the quality posterior, so an outage does not
poison what was learned. Every decision carries its propensity (the probability the policy
had of choosing that model), logged for off-policy evaluation.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from autonomous.core.clock import iso
from autonomous.learning.route_bandit import choose
from autonomous.resources.policy.learning_tuning import RoutingPolicy

__all__ = ["ModelClassStats", "RouteDecision", "RouteOptimizer"]


@dataclass(frozen=True)
class RouteDecision:
    decision_id: str
    query_class: str
    model: str
    propensity: float
    allowed: tuple[str, ...]
    ts: float

    def as_dict(self) -> dict[str, object]:
        return {"decision_id": self.decision_id, "query_class": self.query_class,
                "model": self.model, "propensity": self.propensity,
                "allowed": list(self.allowed), "ts": iso(self.ts)}


@dataclass
class ModelClassStats:
    successes: int = 0
    failures: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def answered(self) -> int:
        return self.successes + self.failures


class RouteOptimizer:
    def __init__(self, policy: RoutingPolicy, *, seed: int = 0) -> None:
        self.policy = policy
        self.rng = random.Random(seed)
        self.seed = seed
        self._count = 0
        self._stats: dict[tuple[str, str], ModelClassStats] = {}
        self._pending: OrderedDict[str, RouteDecision] = OrderedDict()
        self._log: deque[RouteDecision] = deque(maxlen=policy.max_decisions_logged)
        self._rewards: deque[tuple[float, float]] = deque(maxlen=policy.max_decisions_logged)

    # -- deciding --------------------------------------------------------------------------
    def suggest_model_for_query(self, query_class: str, allowed: Sequence[str], *,
                                now: float, decision_id: str | None = None
                                ) -> RouteDecision | None:
        """A model among ``allowed`` for a query of ``query_class``; None when none is allowed.
        ``decision_id``: the caller's id for it (RouteService's persisted one)."""
        if not query_class:
            raise ValueError("query_class must not be empty")
        models = sorted(set(allowed))
        unknown = [m for m in models if m not in self.policy.cost]
        if unknown:
            raise ValueError(f"model(s) {', '.join(unknown)} have no cost in learning_routing."
                             f"cost; known: {', '.join(sorted(self.policy.cost))}")
        cost = {m: self.policy.cost_lambda * self.policy.cost[m] for m in models}
        pick = choose(self.rng, models, self._posterior_counts(query_class, models), cost,
                      (1.0, 1.0), self.policy.propensity_draws)
        if pick is None:
            return None
        self._count += 1
        d = RouteDecision(decision_id or f"route-{self.seed}-{self._count}", query_class,
                          pick.model, pick.propensity, tuple(models), now)
        self._pending[d.decision_id] = d
        while len(self._pending) > self.policy.max_pending:
            self._pending.popitem(last=False)
        self._log.append(d)
        return d

    def record_outcome(self, decision_id: str, *, success: bool, error: bool = False,
                       latency_ms: float | None = None) -> RouteDecision:
        """The outcome of a decision. ``error``: the model did not answer (outage, timeout);
        it counts as an error, not as a wrong answer."""
        d = self._pending.pop(decision_id, None)
        if d is None:
            raise KeyError(f"unknown or already answered route decision {decision_id!r}")
        self.learn(d.query_class, d.model, success=success, error=error,
                   latency_ms=latency_ms, propensity=d.propensity)
        return d

    def learn(self, query_class: str, model: str, *, success: bool, error: bool = False,
              latency_ms: float | None = None, propensity: float | None = None) -> None:
        """An outcome of ``model`` on ``query_class`` (a decision no longer pending here, e.g.
        one logged before a restart); ``propensity`` feeds the realized-reward log."""
        s = self._stats.setdefault((query_class, model), ModelClassStats())
        if error:
            s.errors += 1
        elif success:
            s.successes += 1
        else:
            s.failures += 1
        if latency_ms is not None:
            s.latencies_ms.append(latency_ms)
        if not error and propensity is not None:
            reward = float(success) - self.policy.cost_lambda * self.policy.cost.get(model, 0.0)
            self._rewards.append((reward, propensity))

    def _posterior_counts(self, query_class: str, models: Sequence[str]
                          ) -> dict[str, tuple[float, float]]:
        k = self.policy.prior_strength
        out: dict[str, tuple[float, float]] = {}
        for m in models:
            pooled_s, pooled_n = self._pooled(m)
            rate = (pooled_s + 1.0) / (pooled_n + 2.0)
            s = self._stats.get((query_class, m), ModelClassStats())
            out[m] = (s.successes + k * rate, s.failures + k * (1.0 - rate))
        return out

    def _pooled(self, model: str) -> tuple[int, int]:
        succ = n = 0
        for (_, m), s in self._stats.items():
            if m == model:
                succ, n = succ + s.successes, n + s.answered
        return succ, n

    # -- reading ---------------------------------------------------------------------------
    def analyze_model_performance(self) -> list[dict[str, object]]:
        """Per (query class, model): answered, success rate with its 95 % Wilson interval,
        errors, latency p50/p95, cost and mean reward."""
        rows: list[dict[str, object]] = []
        for (qc, m), s in sorted(self._stats.items()):
            rate = s.successes / s.answered if s.answered else None
            lat = sorted(s.latencies_ms)
            rows.append({
                "query_class": qc, "model": m, "answered": s.answered, "errors": s.errors,
                "success_rate": rate, "success_ci95": _wilson(s.successes, s.answered),
                "latency_p50_ms": _pct(lat, 0.5), "latency_p95_ms": _pct(lat, 0.95),
                "cost": self.policy.cost[m],
                "mean_reward": None if rate is None
                else rate - self.policy.cost_lambda * self.policy.cost[m]})
        return rows

    def optimize_routing_rules(self) -> list[dict[str, object]]:
        """Per query class with ``min_samples`` answers: the model with the best posterior
        mean reward, and the probability (by 1,000 posterior draws) that it is the best."""
        rules: list[dict[str, object]] = []
        classes = sorted({qc for qc, _ in self._stats})
        for qc in classes:
            models = sorted(m for c, m in self._stats if c == qc)
            n = sum(self._stats[(qc, m)].answered for m in models)
            if n < self.policy.min_samples or not models:
                continue
            counts = self._posterior_counts(qc, models)
            mean = {m: (a + 1) / (a + b + 2) - self.policy.cost_lambda * self.policy.cost[m]
                    for m, (a, b) in counts.items()}
            best = max(models, key=lambda m: mean[m])
            rng = random.Random(f"{self.seed}:{qc}")
            wins = sum(max(models, key=lambda m: rng.betavariate(counts[m][0] + 1,
                                                                 counts[m][1] + 1)
                           - self.policy.cost_lambda * self.policy.cost[m]) == best
                       for _ in range(1000))
            rules.append({"query_class": qc, "model": best, "p_best": wins / 1000,
                          "expected_reward": mean[best], "samples": n})
        return rules

    def get_routing_stats(self) -> dict[str, object]:
        """Decision counts and shares per model, propensities, and the mean reward realized by
        the logged decisions that got an answer."""
        share: dict[str, int] = {}
        for d in self._log:
            share[d.model] = share.get(d.model, 0) + 1
        n = len(self._log)
        mean = (sum(r for r, _ in self._rewards) / len(self._rewards)) if self._rewards else None
        return {"decisions": self._count, "logged": n, "pending": len(self._pending),
                "share": {m: c / n for m, c in sorted(share.items())} if n else {},
                "mean_propensity": sum(d.propensity for d in self._log) / n if n else None,
                "mean_reward": mean,
                "min_propensity": min((d.propensity for d in self._log), default=None)}

    def decision_log(self) -> list[RouteDecision]:
        """The newest decisions with their propensities, oldest first."""
        return list(self._log)

    # -- export / import -------------------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        """What was learned, as plain JSON-able data: per (class, model) counts and recent
        latencies, and the decision counter (decisions in flight are not learned yet)."""
        return {"seed": self.seed, "decisions": self._count,
                "stats": [{"query_class": qc, "model": m, "successes": s.successes,
                           "failures": s.failures, "errors": s.errors,
                           "latencies_ms": list(s.latencies_ms)}
                          for (qc, m), s in sorted(self._stats.items())]}

    @classmethod
    def restore(cls, policy: RoutingPolicy, snap: dict[str, object]) -> RouteOptimizer:
        """A router that continues from ``snapshot()``; ``restore(p, s).snapshot() == s``."""
        seed, count, rows = snap.get("seed"), snap.get("decisions"), snap.get("stats")
        if not isinstance(seed, int) or not isinstance(count, int) or not isinstance(rows, list):
            raise ValueError("route snapshot needs integer 'seed' and 'decisions' and a "
                             "'stats' list")
        r = cls(policy, seed=seed)
        r._count = count
        for row in rows:
            s = ModelClassStats(int(row["successes"]), int(row["failures"]), int(row["errors"]))
            s.latencies_ms.extend(float(x) for x in row["latencies_ms"])
            r._stats[(str(row["query_class"]), str(row["model"]))] = s
        return r


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
