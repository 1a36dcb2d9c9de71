"""Safe optimizer vs Optuna TPE on a simulated service with a known optimum (issue 12 item 2).

    python3 bench/bench_optimizer.py            # 10 seeds x 40 trials, three optimizers
    python3 bench/bench_optimizer.py --quick    # 3 seeds

The service has two knobs (``workers``, an integer, and ``batch_window_ms``); throughput
grows with both until p95 latency crosses its 120 ms limit (and error rate its 1 % limit
past 34 workers), so the best safe value lies on the edge of the unsafe region. Measurements
carry noise (throughput ±1 %, latency ±2 %, errors binomial over 5,000 requests). A trial is
unsafe when its measurement breaks a limit. The optimum is found by grid search over the
noiseless model within the hard bounds. Beside ours, in the same run:

* Optuna TPE as configured by default, over the hard bounds, maximizing measured throughput;
* Optuna TPE with ``constraints_func``, the box around the last good value, and the value in
  force enqueued first.

A run "reaches" the optimum when the true throughput of the value it would adopt (its best
safe trial) is >= 98 % of the optimum. Bar: ours 10/10 seeds with <= 10 unsafe trials
(goal <= 5). The optimizer was developed on seeds 100-109; the default report is seeds 0-9.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

from autonomous.learning.performance_optimizer import PerformanceOptimizer  # noqa: E402
from autonomous.resources.policy.learning_tuning import OptimizerPolicy  # noqa: E402

TARGET = "sim"
LAST_GOOD = {"workers": 12.0, "batch_window_ms": 6.0}
TARGET_YAML = """
objective: {metric: throughput_rps, direction: maximize}
constraints: {latency_p95_ms: {max: 120}, error_rate: {max: 0.01}}
parameters:
  workers: {lower: 1, upper: 64, integer: true, box_fraction: 0.5}
  batch_window_ms: {lower: 0, upper: 50, box_fraction: 0.5}
"""
LIMITS = {"latency_p95_ms": 120.0, "error_rate": 0.01}


def true_metrics(workers: float, batch: float) -> dict[str, float]:
    thr = 1000 * (1 - math.exp(-workers / 10)) * (1 + 0.8 * batch / (batch + 8)) \
        - 3 * workers - 4 * batch
    lat = 30 + 2 * batch + 100 * (workers / 38) ** 3
    err = 0.002 + 0.05 * max(0.0, workers - 34) / 30
    return {"throughput_rps": thr, "latency_p95_ms": lat, "error_rate": err}


def optimum() -> float:
    best = -math.inf
    for w in range(1, 65):
        for b in np.linspace(0, 50, 5001):
            m = true_metrics(w, float(b))
            if all(m[k] <= v for k, v in LIMITS.items()):
                best = max(best, m["throughput_rps"])
    return best


class Service:
    """The simulated service: one noisy measurement per trial, seeded."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def measure(self, values: dict[str, float]) -> dict[str, float]:
        t = true_metrics(values["workers"], values["batch_window_ms"])
        return {"throughput_rps": t["throughput_rps"] * (1 + 0.01 * self.rng.standard_normal()),
                "latency_p95_ms": t["latency_p95_ms"] * (1 + 0.02 * self.rng.standard_normal()),
                "error_rate": float(self.rng.binomial(5000, t["error_rate"])) / 5000}


def unsafe(m: dict[str, float]) -> bool:
    return any(m[k] > v for k, v in LIMITS.items())


@dataclass(frozen=True)
class Run:
    fraction: float  # true throughput of the adopted value / optimum
    unsafe: int
    trials: int
    seconds: float


def policy() -> OptimizerPolicy:
    doc = yaml.safe_load((ROOT / "policies" / "learning_tuning.yaml").read_text())
    raw = doc["spec"]["policy"]["learning_optimizer"]
    raw["targets"] = {TARGET: yaml.safe_load(TARGET_YAML)}
    return OptimizerPolicy.model_validate(raw)


def run_ours(seed: int, trials: int, best: float) -> Run:
    t0 = time.perf_counter()
    p = policy().model_copy(update={"trials_per_cycle": trials})
    opt, svc, n_unsafe, n = PerformanceOptimizer(p, seed=seed), Service(seed), 0, 0
    while n < trials:
        s = opt.optimize_parameter(TARGET, LAST_GOOD)
        if s.values is None:
            break
        m = svc.measure(s.values)
        opt.record_trial(TARGET, s.values, m)
        n, n_unsafe = n + 1, n_unsafe + unsafe(m)
    chosen = opt.best_trial(TARGET, LAST_GOOD)
    values = chosen.values if chosen is not None else LAST_GOOD
    frac = true_metrics(values["workers"], values["batch_window_ms"])["throughput_rps"] / best
    return Run(frac, n_unsafe, n, time.perf_counter() - t0)


def run_optuna(seed: int, trials: int, best: float, guarded: bool) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    svc = Service(seed)
    sampler = optuna.samplers.TPESampler(seed=seed)
    if guarded:  # constraints reach TPE through trial.set_constraint (Optuna >= 5)
        w_lo, w_hi, b_lo, b_hi = 1, 43, 0.0, 31.0  # the box: last good ± 0.5·range, clipped
    else:
        w_lo, w_hi, b_lo, b_hi = 1, 64, 0.0, 50.0
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if guarded:
        study.enqueue_trial({"workers": int(LAST_GOOD["workers"]),
                             "batch_window_ms": LAST_GOOD["batch_window_ms"]})
    measured: list[tuple[dict[str, float], dict[str, float]]] = []

    def objective(trial: optuna.Trial) -> float:
        v = {"workers": float(trial.suggest_int("workers", w_lo, w_hi)),
             "batch_window_ms": trial.suggest_float("batch_window_ms", b_lo, b_hi)}
        m = svc.measure(v)
        if guarded:
            for k, lim in LIMITS.items():
                trial.set_constraint(k, m[k] - lim)
        measured.append((v, m))
        return m["throughput_rps"]

    study.optimize(objective, n_trials=trials)
    safe = [(v, m) for v, m in measured if not unsafe(m)]
    frac = 0.0
    if safe:
        v = max(safe, key=lambda vm: vm[1]["throughput_rps"])[0]
        frac = true_metrics(v["workers"], v["batch_window_ms"])["throughput_rps"] / best
    return Run(frac, sum(unsafe(m) for _, m in measured), len(measured),
               time.perf_counter() - t0)


def table(name: str, runs: list[Run]) -> str:
    reached = sum(r.fraction >= 0.98 for r in runs)
    return (f"| {name} | {reached}/{len(runs)} | {statistics.mean(r.unsafe for r in runs):.1f} "
            f"| {max(r.unsafe for r in runs)} | {statistics.mean(r.fraction for r in runs):.3f} "
            f"| {min(r.fraction for r in runs):.3f} "
            f"| {statistics.mean(r.trials for r in runs):.1f} "
            f"| {statistics.mean(r.seconds for r in runs):.2f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=40)
    a = ap.parse_args(argv)
    seeds = range(a.first_seed, a.first_seed + (3 if a.quick else a.seeds))
    best = optimum()
    print(f"simulated service: optimum {best:.1f} rps (noiseless, within the limits); "
          f"value in force {true_metrics(12, 6)['throughput_rps']:.1f} rps; "
          f"{a.trials} trials; seeds {seeds.start}-{seeds.stop - 1}")
    results = {
        "ours (safe GP, box, in force first)": [run_ours(s, a.trials, best) for s in seeds],
        "Optuna TPE default (hard bounds)": [run_optuna(s, a.trials, best, False) for s in seeds],
        "Optuna TPE + constraints + box + in force first":
            [run_optuna(s, a.trials, best, True) for s in seeds],
    }
    print("| optimizer | seeds >= 98 % | unsafe mean | unsafe max | reached mean | "
          "reached min | trials | s/seed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        print(table(name, runs))
    ours = results["ours (safe GP, box, in force first)"]
    ok = all(r.fraction >= 0.98 for r in ours) and max(r.unsafe for r in ours) <= 10
    goal = max(r.unsafe for r in ours) <= 5
    print(f"bar (all seeds >= 98 %, <= 10 unsafe): {'met' if ok else 'MISSED'}; "
          f"goal (<= 5 unsafe): {'met' if goal else 'missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
