"""PerformanceOptimizer: safe tuning of declared parameters (issue 12 item 2).

Ask / tell, no I/O: the caller (the learning controller) applies a suggested value, lets it
run, measures, and reports the metrics back with :meth:`record_trial`. Guardrails, all from
``policies/learning_tuning.yaml`` (section ``learning_optimizer``):

* only the box declared around the **last good value** is explored (hard bounds clip it);
* the **value in force is tried first**, so the cycle has a safe reference;
* a value is tried only when every constraint (error rate, latency…) is predicted within its
  limit with margin (``safety_beta`` sd of a Gaussian-process model, prior "at the limit");
* a cycle stops after ``trials_per_cycle`` trials or ``max_unsafe_trials`` unsafe ones;
* after an adopted value bakes, :meth:`judge_bake` (and :meth:`run_optimization_cycle`)
  returns a **revert** decision when the bake broke a constraint or lost objective.

Every decision is a returned value; writing the YAML change is the proposal machinery's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from autonomous.learning.safe_search import Box, box_around, pick_next, smoothed
from autonomous.resources.policy.learning_tuning import OptimizerPolicy, OptimizerTarget

__all__ = ["BakeVerdict", "OptimizationDecision", "PerformanceOptimizer", "Suggestion",
           "TargetState", "Trial"]

DecisionKind = Literal["try", "adopt", "wait", "keep", "revert", "stop"]


@dataclass(frozen=True)
class Trial:
    target: str
    number: int
    values: dict[str, float]
    metrics: dict[str, float]
    violations: tuple[str, ...]  # "latency_p95_ms 130 > 120"

    @property
    def safe(self) -> bool:
        return not self.violations

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Trial:
        """The inverse of a ``get_optimization_history()`` row (persisted, exported)."""
        values, metrics = row.get("values"), row.get("metrics")
        violations = row.get("violations", [])
        if not (isinstance(values, Mapping) and isinstance(metrics, Mapping)
                and isinstance(violations, list) and "target" in row and "trial" in row):
            raise ValueError("not an optimization history row: needs target, trial, values, "
                             f"metrics, violations; got keys {sorted(row)}")
        try:
            return cls(str(row["target"]), int(str(row["trial"])),
                       {str(k): float(v) for k, v in values.items()},
                       {str(k): float(v) for k, v in metrics.items()},
                       tuple(str(v) for v in violations))
        except (TypeError, ValueError) as e:
            raise ValueError(f"not an optimization history row: {e}") from e


@dataclass(frozen=True)
class Suggestion:
    target: str
    values: dict[str, float] | None  # None: the cycle is over
    reason: str
    predicted_gain: tuple[float, float] | None = None  # (mean, sd) relative to the first trial


@dataclass(frozen=True)
class TargetState:
    """What the caller observed for one target: the value in force, the last good one, and
    (while a change bakes) the metrics of the bake and of the last good value."""

    in_force: Mapping[str, float]
    last_good: Mapping[str, float]
    bake_metrics: Mapping[str, float] | None = None
    last_good_metrics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class BakeVerdict:
    ok: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class OptimizationDecision:
    target: str
    kind: DecisionKind
    values: dict[str, float] | None
    reason: str
    evidence: dict[str, float | int | str] = field(default_factory=dict)


class PerformanceOptimizer:
    def __init__(self, policy: OptimizerPolicy, *, seed: int = 0) -> None:
        self.policy = policy
        self.seed = seed
        self._trials: dict[str, list[Trial]] = {}

    # -- ask / tell ------------------------------------------------------------------------
    def optimize_parameter(self, target: str, last_good: Mapping[str, float],
                           in_force: Mapping[str, float] | None = None) -> Suggestion:
        """The next values to try for ``target`` (all its declared parameters), or why none."""
        spec = self._target(target)
        box = box_around(spec.parameters, last_good)
        trials = self._trials.get(target, [])
        if not trials:
            current = dict(in_force if in_force is not None else last_good)
            return Suggestion(target, {n: float(current[n]) for n in box.names},
                              "the value in force is tried first")
        if len(trials) >= self.policy.trials_per_cycle:
            return Suggestion(target, None, f"trial budget spent ({len(trials)} trials)")
        unsafe = sum(not t.safe for t in trials)
        if unsafe >= self.policy.max_unsafe_trials:
            return Suggestion(target, None, f"unsafe budget spent ({unsafe} unsafe trials)")
        inside = [t for t in trials if box.contains(t.values)]
        if not inside:
            return Suggestion(target, None, "no trial inside the box around the last good value")
        x = np.array([box.to_unit(t.values) for t in inside])
        objective = self._objective(spec, inside)
        constraints = [np.array([t.metrics[m] / lim.max - 1.0 for t in inside])
                       for m, lim in sorted(spec.constraints.items())]
        best = x[self._best_index(spec, box, inside)]
        rng = np.random.default_rng([self.seed, len(trials)])
        pick = pick_next(self.policy, box, x, objective, constraints, rng, best)
        if pick.unit is None:
            return Suggestion(target, None, "no untried value is predicted safe "
                              f"(best bound {pick.worst_constraint:+.3f} over the limit)")
        values = box.from_unit(pick.unit[None, :])[0]
        return Suggestion(target, {n: float(v) for n, v in zip(box.names, values)},
                          "highest upper bound among values predicted safe", pick.objective)

    def record_trial(self, target: str, values: Mapping[str, float],
                     metrics: Mapping[str, float]) -> Trial:
        """Tell the optimizer what ``values`` measured; returns the trial, safe or not."""
        spec = self._target(target)
        needed = [spec.objective.metric, *spec.constraints]
        missing = [m for m in needed if m not in metrics]
        if missing:
            raise ValueError(f"target {target!r}: trial metrics lack {', '.join(missing)}")
        trials = self._trials.setdefault(target, [])
        trial = Trial(target, len(trials), {k: float(v) for k, v in values.items()},
                      {k: float(v) for k, v in metrics.items()}, self._violations(spec, metrics))
        trials.append(trial)
        return trial

    def load_history(self, trials: Iterable[Trial]) -> None:
        """Restore trials persisted by the caller (e.g. after an operator restart)."""
        for t in sorted(trials, key=lambda t: (t.target, t.number)):
            self._trials.setdefault(t.target, []).append(t)

    def reset_cycle(self, target: str) -> None:
        """Start a new cycle for ``target`` (after a value was adopted or reverted)."""
        self._trials.pop(target, None)

    def best_trial(self, target: str, last_good: Mapping[str, float]) -> Trial | None:
        """The safe trial with the best smoothed objective, or None."""
        spec = self._target(target)
        box = box_around(spec.parameters, last_good)
        inside = [t for t in self._trials.get(target, []) if box.contains(t.values)]
        if not any(t.safe for t in inside):
            return None
        return inside[self._best_index(spec, box, inside)]

    # -- cycle -----------------------------------------------------------------------------
    def judge_bake(self, target: str, bake_metrics: Mapping[str, float],
                   last_good_metrics: Mapping[str, float] | None) -> BakeVerdict:
        """Bad when a constraint exceeds limit·(1 + margin) or the objective lost more than
        ``bake_margin`` against the last good value's metrics."""
        spec = self._target(target)
        margin = self.policy.bake_margin
        reasons = [f"{m} {bake_metrics[m]:g} > {lim.max * (1 + margin):g}"
                   for m, lim in sorted(spec.constraints.items())
                   if m in bake_metrics and bake_metrics[m] > lim.max * (1 + margin)]
        reasons += [f"{m} not measured during the bake" for m in spec.constraints
                    if m not in bake_metrics]
        metric = spec.objective.metric
        if last_good_metrics is not None and metric in bake_metrics and metric in last_good_metrics:
            sign = 1.0 if spec.objective.direction == "maximize" else -1.0
            before, after = last_good_metrics[metric], bake_metrics[metric]
            if sign * (after - before) < -margin * abs(before):
                reasons.append(f"{metric} {after:g} worse than last good {before:g} by more "
                               f"than {margin:.0%}")
        return BakeVerdict(not reasons, tuple(reasons))

    def run_optimization_cycle(self, states: Mapping[str, TargetState]
                               ) -> list[OptimizationDecision]:
        """One decision per declared target the caller has state for (pure given history)."""
        out: list[OptimizationDecision] = []
        for target in sorted(self.policy.targets):
            state = states.get(target)
            if state is not None:
                out.append(self._decide(target, state))
        return out

    def _decide(self, target: str, st: TargetState) -> OptimizationDecision:
        if dict(st.in_force) != dict(st.last_good) and st.bake_metrics is None:
            return OptimizationDecision(target, "wait", dict(st.in_force),
                                        "a changed value is baking: no bake metrics yet")
        if dict(st.in_force) != dict(st.last_good) and st.bake_metrics is not None:
            v = self.judge_bake(target, st.bake_metrics, st.last_good_metrics)
            if v.ok:
                return OptimizationDecision(target, "keep", dict(st.in_force),
                                            "bake passed: the value becomes the last good one")
            return OptimizationDecision(target, "revert", dict(st.last_good),
                                        "bad bake: " + "; ".join(v.reasons))
        s = self.optimize_parameter(target, st.last_good, st.in_force)
        if s.values is not None:
            ev: dict[str, float | int | str] = {"trial": len(self._trials.get(target, []))}
            if s.predicted_gain is not None:
                ev.update(predicted_gain=s.predicted_gain[0], predicted_sd=s.predicted_gain[1])
            return OptimizationDecision(target, "try", s.values, s.reason, ev)
        return self._adopt_or_stop(target, st, s.reason)

    def _adopt_or_stop(self, target: str, st: TargetState, why: str) -> OptimizationDecision:
        best = self.best_trial(target, st.last_good)
        trials = self._trials.get(target, [])
        first = trials[0] if trials else None
        if best is None or first is None or best.values == first.values:
            return OptimizationDecision(target, "stop", None, f"{why}; nothing beats the value "
                                        "in force")
        spec = self._target(target)
        gain = _gain(spec, first.metrics, best.metrics)
        evidence: dict[str, float | int | str] = {
            "trials": len(trials), "unsafe": sum(not t.safe for t in trials),
            "best_trial": best.number, "gain": gain, "metric": spec.objective.metric}
        if gain <= self.policy.bake_margin:
            return OptimizationDecision(target, "stop", None, f"{why}; best gain {gain:.1%} is "
                                        "within the bake margin", evidence)
        return OptimizationDecision(target, "adopt", dict(best.values),
                                    f"{why}; best safe trial gains {gain:.1%}", evidence)

    # -- reading ---------------------------------------------------------------------------
    def get_optimization_history(self, target: str | None = None) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for name in sorted(self._trials):
            if target is None or name == target:
                rows += [{"target": t.target, "trial": t.number, "values": t.values,
                          "metrics": t.metrics, "safe": t.safe,
                          "violations": list(t.violations)} for t in self._trials[name]]
        return rows

    def suggest_optimizations(self, last_good: Mapping[str, Mapping[str, float]]
                              ) -> list[dict[str, object]]:
        """Per target with trials: the best safe values beside the value in force, with the
        measured gain and the trial counts behind it."""
        out: list[dict[str, object]] = []
        for target, good in sorted(last_good.items()):
            trials = self._trials.get(target, [])
            best = self.best_trial(target, good) if trials else None
            if best is None:
                continue
            spec = self._target(target)
            out.append({"target": target, "values": best.values, "in_force": trials[0].values,
                        "metric": spec.objective.metric,
                        "gain": _gain(spec, trials[0].metrics, best.metrics),
                        "trials": len(trials), "unsafe": sum(not t.safe for t in trials)})
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _target(self, target: str) -> OptimizerTarget:
        spec = self.policy.targets.get(target)
        if spec is None:
            raise KeyError(f"unknown optimizer target {target!r}; declared: "
                           f"{', '.join(sorted(self.policy.targets)) or 'none'}")
        return spec

    @staticmethod
    def _violations(spec: OptimizerTarget, metrics: Mapping[str, float]) -> tuple[str, ...]:
        return tuple(f"{m} {metrics[m]:g} > {lim.max:g}"
                     for m, lim in sorted(spec.constraints.items()) if metrics[m] > lim.max)

    @staticmethod
    def _objective(spec: OptimizerTarget, trials: list[Trial]) -> np.ndarray:
        return np.array([_gain(spec, trials[0].metrics, t.metrics) for t in trials])

    def _best_index(self, spec: OptimizerTarget, box: Box, trials: list[Trial]) -> int:
        x = np.array([box.to_unit(t.values) for t in trials])
        mean = smoothed(self.policy, x, self._objective(spec, trials))
        safe = np.array([t.safe for t in trials])
        return int(np.argmax(np.where(safe, mean, -np.inf))) if safe.any() else 0


def _gain(spec: OptimizerTarget, base: Mapping[str, float], new: Mapping[str, float]) -> float:
    """Relative improvement of the objective from ``base`` to ``new`` (positive is better)."""
    m = spec.objective.metric
    sign = 1.0 if spec.objective.direction == "maximize" else -1.0
    return sign * (new[m] - base[m]) / (abs(base[m]) or 1.0)
