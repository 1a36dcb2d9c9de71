"""PerformanceOptimizer: value in force first, box and bounds, constraints, unsafe budget,
bad-bake revert, cycle decisions, and the policy file it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from autonomous.learning.performance_optimizer import PerformanceOptimizer, TargetState, Trial
from autonomous.resources.loader import load_tree
from autonomous.resources.policy.learning_tuning import OptimizerPolicy

ROOT = Path(__file__).resolve().parents[2]
TARGET = {
    "objective": {"metric": "rps", "direction": "maximize"},
    "constraints": {"latency_ms": {"max": 100}, "error_rate": {"max": 0.01}},
    "parameters": {"workers": {"lower": 1, "upper": 64, "integer": True, "box_fraction": 0.25},
                   "batch": {"lower": 0, "upper": 50, "box_fraction": 0.5}},
}
GOOD = {"workers": 10.0, "batch": 5.0}


def _policy(**over: object) -> OptimizerPolicy:
    doc = yaml.safe_load((ROOT / "policies" / "learning_tuning.yaml").read_text())
    raw = doc["spec"]["policy"]["learning_optimizer"]
    raw["targets"] = {"svc": TARGET}
    raw.update(over)
    return OptimizerPolicy.model_validate(raw)


def _smooth(v: dict[str, float]) -> dict[str, float]:
    w, b = v["workers"], v["batch"]
    return {"rps": 100 * w + 10 * b, "latency_ms": 20 + 2.5 * w + b, "error_rate": 0.001}


def _cliff(v: dict[str, float]) -> dict[str, float]:
    """Safe only at the value in force or below: any step up breaks the latency limit."""
    bad = v["workers"] > GOOD["workers"] or v["batch"] > GOOD["batch"] + 0.5
    return {"rps": 100 * v["workers"], "latency_ms": 500.0 if bad else 50.0, "error_rate": 0.0}


def _run(opt: PerformanceOptimizer, measure) -> list:
    trials = []
    while (s := opt.optimize_parameter("svc", GOOD)).values is not None:
        trials.append(opt.record_trial("svc", s.values, measure(s.values)))
    return trials


def test_value_in_force_first_and_box_respected() -> None:
    opt = PerformanceOptimizer(_policy(trials_per_cycle=15), seed=1)
    first = opt.optimize_parameter("svc", GOOD)
    assert first.values == GOOD and "in force" in first.reason
    trials = _run(opt, _smooth)
    assert len(trials) == 15
    for t in trials:  # box: workers 10 ± 0.25·63, batch 5 ± 25 (clipped at 0)
        assert 1 <= t.values["workers"] <= 10 + 15.75
        assert t.values["workers"] == int(t.values["workers"])
        assert 0 <= t.values["batch"] <= 30
    # the smooth service's safe optimum is on latency = 100: the optimizer climbs toward it
    best = opt.best_trial("svc", GOOD)
    assert best is not None and best.safe and best.metrics["rps"] > 1.5 * trials[0].metrics["rps"]
    assert sum(not t.safe for t in trials) <= 2


def test_unsafe_budget_is_never_exceeded() -> None:
    for seed in range(3):
        opt = PerformanceOptimizer(_policy(max_unsafe_trials=3, safety_beta=0.0), seed=seed)
        trials = _run(opt, _cliff)
        # safety_beta 0 trusts the model's mean: it steps up and meets the cliff, and the
        # cycle stops at the budget, never past it
        assert sum(not t.safe for t in trials) == 3
        last = opt.optimize_parameter("svc", GOOD)
        assert last.values is None and last.reason == "unsafe budget spent (3 unsafe trials)"


def test_deterministic_for_a_seed() -> None:
    a, b = (PerformanceOptimizer(_policy(trials_per_cycle=6), seed=4) for _ in range(2))
    assert [t.values for t in _run(a, _smooth)] == [t.values for t in _run(b, _smooth)]


def test_bad_bake_is_reverted_good_bake_kept() -> None:
    opt = PerformanceOptimizer(_policy(), seed=0)
    new = {"workers": 14.0, "batch": 5.0}
    good_metrics = {"rps": 1000.0, "latency_ms": 60.0, "error_rate": 0.001}
    bad = opt.run_optimization_cycle({"svc": TargetState(
        new, GOOD, {"rps": 1300.0, "latency_ms": 140.0, "error_rate": 0.001}, good_metrics)})
    assert [(d.kind, d.values) for d in bad] == [("revert", GOOD)]
    assert "latency_ms 140 > 105" in bad[0].reason
    slower = opt.judge_bake("svc", {"rps": 900.0, "latency_ms": 60.0, "error_rate": 0.0},
                            good_metrics)
    assert not slower.ok and "worse than last good" in slower.reasons[0]
    waiting = opt.run_optimization_cycle({"svc": TargetState(new, GOOD)})
    assert [(d.kind, d.values) for d in waiting] == [("wait", new)]
    assert opt.get_optimization_history() == []  # nothing was tried meanwhile
    kept = opt.run_optimization_cycle({"svc": TargetState(
        new, GOOD, {"rps": 1300.0, "latency_ms": 90.0, "error_rate": 0.001}, good_metrics)})
    assert [(d.kind, d.values) for d in kept] == [("keep", new)]


def test_cycle_tries_then_adopts_best_safe_value() -> None:
    opt = PerformanceOptimizer(_policy(trials_per_cycle=12), seed=2)
    state = {"svc": TargetState(GOOD, GOOD)}
    kinds = []
    while (d := opt.run_optimization_cycle(state)[0]).kind == "try":
        kinds.append(d.kind)
        assert d.values is not None
        opt.record_trial("svc", d.values, _smooth(d.values))
    assert len(kinds) == 12 and d.kind == "adopt" and d.values is not None
    assert d.values != GOOD and float(d.evidence["gain"]) > 0.05
    assert d.evidence["trials"] == 12
    hist = opt.get_optimization_history("svc")
    assert len(hist) == 12 and hist[0]["values"] == GOOD
    sugg = opt.suggest_optimizations({"svc": GOOD})
    assert sugg[0]["values"] == d.values and sugg[0]["in_force"] == GOOD


def test_history_round_trip_continues_the_cycle() -> None:
    opt = PerformanceOptimizer(_policy(trials_per_cycle=8), seed=6)
    for _ in range(5):
        s = opt.optimize_parameter("svc", GOOD)
        assert s.values is not None
        opt.record_trial("svc", s.values, _smooth(s.values))
    rows = opt.get_optimization_history()
    back = PerformanceOptimizer(_policy(trials_per_cycle=8), seed=6)
    back.load_history(Trial.from_row(r) for r in rows)  # e.g. after an operator restart
    assert back.get_optimization_history() == rows
    assert back.optimize_parameter("svc", GOOD) == opt.optimize_parameter("svc", GOOD)
    with pytest.raises(ValueError, match="not an optimization history row"):
        Trial.from_row({"target": "svc"})


def test_bench_figures_on_two_seeds() -> None:
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_optimizer as b

    sc = b.SCENARIOS["throughput"]
    best = sc.optimum()
    for seed in (0, 1):
        ours = b.run_ours(sc, seed, 40, best)
        assert ours.fraction >= 0.97 and ours.unsafe <= 5 and ours.trials == 40
    blind = b.run_optuna(sc, 0, 40, best, guarded=False)
    assert blind.unsafe > 10  # the peer really explores the unsafe region


def test_nothing_better_means_stop() -> None:
    opt = PerformanceOptimizer(_policy(max_unsafe_trials=2, safety_beta=0.0), seed=0)
    _run(opt, _cliff)
    d = opt.run_optimization_cycle({"svc": TargetState(GOOD, GOOD)})[0]
    assert (d.kind, d.values) == ("stop", None)
    assert d.reason == "unsafe budget spent (2 unsafe trials); nothing beats the value in force"


def test_input_errors_are_clear() -> None:
    opt = PerformanceOptimizer(_policy(), seed=0)
    with pytest.raises(KeyError, match="unknown optimizer target 'nope'; declared: svc"):
        opt.optimize_parameter("nope", GOOD)
    with pytest.raises(ValueError, match="trial metrics lack error_rate"):
        opt.record_trial("svc", GOOD, {"rps": 1.0, "latency_ms": 2.0})
    with pytest.raises(ValueError, match="last good value 99.0 is outside"):
        opt.optimize_parameter("svc", {"workers": 99.0, "batch": 1.0})
    bad = dict(TARGET, parameters={"w": {"lower": 5, "upper": 1, "box_fraction": 0.5}})
    with pytest.raises(ValidationError, match="upper must be greater than lower"):
        _policy(targets={"svc": bad})


def test_default_policy_file_validates() -> None:
    result = load_tree(ROOT)
    assert result.problems == []
    for mode, policy in result.tree.policies.items():
        p = OptimizerPolicy.model_validate(policy["learning_optimizer"])
        assert p.max_unsafe_trials <= p.trials_per_cycle, mode
