"""PerformanceOptimizer in the learning loop: a target declared in ``learning_optimizer.targets``
(objective, constraints, a box per parameter around its last good value, the YAML file and
path each parameter lives at) yields its trials as proposals, through the one lifecycle.

Each cycle, per target: the values in force are read from their files; the metrics measured
for them (the newest ``<metric>{service=<target>}`` points) are recorded as a trial (once per
distinct value in force; a target with an unmeasured metric records none and says so); the
optimizer's next suggestion becomes at most one proposal, for the parameter it moves most
(one parameter per bake window), **clamped to the proposal step limit**
(``learning.proposals.max_step_fraction``, ≤ 25 %) and to the hard bounds, whose declared
bounds go with the proposal so the growth gate checks them again. The K-baking bound, the
cooldown, governance and the bake verdict are the lifecycle's own; the proposal's guard names
the target's constraint limits, which the learning controller checks against the series
measured while it bakes (a violated limit reverts it; see controllers/learning.py). Trials of the current
cycle are kept in ``kv`` (bounded by ``trials_per_cycle``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autonomous.context import OperatorContext
from autonomous.learning.candidate import Candidate
from autonomous.learning.performance_optimizer import PerformanceOptimizer, Trial
from autonomous.learning.proposal_patch import Key, Patch
from autonomous.resources.policy.learning_tuning import OptimizerPolicy, OptimizerTarget
from autonomous.store.timeseries import TimeSeriesStore

__all__ = ["clamp_step", "optimizer_candidates"]

KV = "learning.optimizer.trials"


def clamp_step(old: float, new: float, low: float, high: float, max_step: float,
               integer: bool) -> float:
    """``new`` moved no further than ``max_step`` × |old| from ``old``, inside [low, high]."""
    if old != 0:
        span = abs(old) * max_step
        new = min(max(new, old - span), old + span)
    new = min(max(new, low), high)
    if integer:  # round toward old so the step stays within the limit
        new = float(int(new)) if new >= old else float(-int(-new))
    return new


def _path(p: str) -> tuple[Key, ...]:
    return tuple(int(k) if k.isdigit() else k for k in p.split("."))


def _read(root: Path, file: str, path: tuple[Key, ...]) -> float | None:
    try:
        node: Any = yaml.safe_load((root / file).read_text())
        for k in path:
            node = node[k]
        return float(node)
    except (OSError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
        return None


def _policies(ctx: OperatorContext) -> tuple[OptimizerPolicy, float]:
    pol = ctx.policy()
    return (OptimizerPolicy.model_validate(pol["learning_optimizer"]),
            float(pol["learning"]["proposals"]["max_step_fraction"]))


def optimizer_candidates(ctx: OperatorContext) -> tuple[list[Candidate],
                                                        list[dict[str, Any]]]:
    """(proposals to make, targets skipped with why)."""
    policy, max_step = _policies(ctx)
    series = TimeSeriesStore(ctx.store, ctx.clock)
    history = [Trial.from_row(r) for r in (ctx.store.kv_get(KV, []) or [])]
    opt = PerformanceOptimizer(policy)
    opt.load_history(history)
    out: list[Candidate] = []
    skipped: list[dict[str, Any]] = []
    for name, spec in sorted(policy.targets.items()):
        in_force = _in_force(ctx.root, spec)
        if in_force is None:
            skipped.append({"key": f"optimizer:{name}", "reason": "a parameter has no file/path "
                            "or its value there is not a number"})
            continue
        metrics, missing = _measure(series, name, spec)
        mine = [t for t in history if t.target == name]
        if missing:
            skipped.append({"key": f"optimizer:{name}",
                            "reason": f"not measured: {', '.join(missing)}"})
            continue
        if not mine or mine[-1].values != in_force:
            history.append(opt.record_trial(name, in_force, metrics))
        s = opt.optimize_parameter(name, in_force, in_force)
        if s.values is None or s.values == in_force:
            skipped.append({"key": f"optimizer:{name}", "reason": s.reason})
            continue
        cand = _candidate(name, spec, in_force, s.values, max_step, s.reason,
                          s.predicted_gain, len([t for t in history if t.target == name]))
        if cand is None:
            skipped.append({"key": f"optimizer:{name}", "reason": "step rounds to no change"})
        else:
            out.append(cand)
    ctx.store.kv_set(KV, opt.get_optimization_history())
    return out, skipped


def _in_force(root: Path, spec: OptimizerTarget) -> dict[str, float] | None:
    vals: dict[str, float] = {}
    for pname, box in spec.parameters.items():
        v = None if box.file is None or box.path is None else _read(root, box.file,
                                                                    _path(box.path))
        if v is None:
            return None
        vals[pname] = v
    return vals


def _measure(series: TimeSeriesStore, target: str, spec: OptimizerTarget
             ) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    missing: list[str] = []
    for m in [spec.objective.metric, *sorted(spec.constraints)]:
        pts = series.latest(m, {"service": target})
        if pts:
            metrics[m] = max(pts, key=lambda p: p[1])[2]
        else:
            missing.append(f"{m}{{service={target}}}")
    return metrics, missing


def _candidate(name: str, spec: OptimizerTarget, in_force: dict[str, float],
               want: dict[str, float], max_step: float, reason: str,
               gain: tuple[float, float] | None, trials: int) -> Candidate | None:
    def rel(p: str) -> float:
        old = in_force[p]
        return abs(want[p] - old) / (abs(old) or 1.0)
    pname = max(sorted(want), key=rel)
    box = spec.parameters[pname]
    old = in_force[pname]
    new = clamp_step(old, want[pname], box.lower, box.upper, max_step, box.integer)
    if new == old:
        return None
    assert box.file is not None and box.path is not None
    value: float | int = int(new) if box.integer else new
    old_v: float | int = int(old) if box.integer else old
    return Candidate(
        "performance_optimizer", f"optimizer {name}: trial {trials} measured",
        "learning.optimizer", f"optimizer {name}: {pname} {old_v} → {value}",
        Patch(box.file, _path(box.path), old_v, value), box.lower, box.upper,
        evidence={"target": name, "parameter": pname, "suggested": want[pname],
                  "clamped_to_step": new != want[pname], "max_step_fraction": max_step,
                  "trials": trials, "objective": spec.objective.metric},
        evaluation={"reason": reason, "in_force": old, "proposed": new,
                    "predicted_gain": None if gain is None else gain[0],
                    "predicted_sd": None if gain is None else gain[1]},
        guard={"area": f"optimizer:{name}", "target": name,
               "constraints": {m: c.max for m, c in sorted(spec.constraints.items())}})
