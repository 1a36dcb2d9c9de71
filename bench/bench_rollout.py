"""Judge benchmark: false rollbacks on identical versions and detection of a +50 % latency
regression, from repeated rollouts replayed over *measured* paired probe rounds.

    python3 bench/bench_rollout.py            # 6 candidate processes, 1000 rollouts per case
    python3 bench/bench_rollout.py --quick    # 3 candidate processes, 200 rollouts per case
    python3 bench/bench_rollout.py --gap 0.05 # stress: rounds 50 ms apart (more correlated)

Measure: one baseline sample-stack process (``nexus`` 1.0.0, started first and warmed like a
running service) and, one after another, fresh candidate processes of the same code (started
the way the controller starts one); against each, the controller's own paired probe rounds
(``autonomous.evolution.probes.paired_round``, ``probes_per_observe`` pairs, one warm-up round
dropped), ``--gap`` seconds apart (default 0.5 s; the controller's rounds are a reconcile
interval apart (config/autonomous.yaml), so the default is the harder case: on this 2-core host a
10-round window's median ratio of identical code spanned 0.91–1.06 at 0.5 s but 0.88–1.31 at
0.05 s). The rounds keep their order: a slow burst stays a burst.

Replay: each rollout goes through every policy phase the way the controller does — per
reconcile one round of the candidate process picked for the phase (consecutive rounds from a
random start), the judge asked on everything so far (plus the per-round ratios), ROLLBACK acted
on at once, ADVANCE only after the phase's bake (``min_bake_seconds`` / the evolution
controller's reconcile interval, in rounds), no pass by the deadline rolls back. The +50 %
case multiplies the candidate's measured latencies by 1.5. Figures beside each other, same
draws: the judge; the judge without the round gate (rounds not passed: what the round gate
buys); and a fixed rule (candidate p50 ≥ 1.2 × baseline p50 at the end of a phase's bake).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import yaml
from _common import ROOT, free_port, wait_http, write_result  # noqa: I001

from autonomous.evolution.metrics_comparator import Samples, Verdict, compare
from autonomous.evolution.probes import Round, paired_round
from autonomous.resources.policy.evolution import EvolutionPolicy, JudgePolicy
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.testing import terminate

PROBES = 10  # RolloutSpec.probes_per_observe default


def _interval() -> float:
    """The evolution controller's reconcile interval in the shipped config."""
    cfg = yaml.safe_load((ROOT / "config" / "autonomous.yaml").read_text())
    return float(cfg["spec"]["controllers"]["evolution"]["interval_seconds"])


INTERVAL_S = _interval()


def _start(port: int, version: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name", "nexus",
                          "--port", str(port), "--service-version", version],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/ready")
    return p


async def measure(candidates: int, rounds: int, gap: float) -> list[list[Round]]:
    base_port = free_port()
    base = _start(base_port, "1.0.0")
    client = ProbeClient()
    out: list[list[Round]] = []
    try:
        base_url = f"http://127.0.0.1:{base_port}/health"
        await paired_round(client, base_url, base_url, PROBES)  # the baseline is warm
        for _ in range(candidates):
            port = free_port()
            cand = _start(port, "2.0.0")
            try:
                url = f"http://127.0.0.1:{port}/health"
                await paired_round(client, base_url, url, PROBES)  # warm-up round: dropped
                seq = []
                for _ in range(rounds):
                    seq.append(await paired_round(client, base_url, url, PROBES))
                    await asyncio.sleep(gap)  # pacing between reconciles, not a proof
                out.append(seq)
            finally:
                terminate(cand)
    finally:
        await client.aclose()
        terminate(base)
    return out


@dataclass
class Rule:
    name: str
    judge: JudgePolicy | None  # None: the fixed p50 rule
    use_rounds: bool = True


def _why(reason: str) -> str:
    for word in ("immediate", "latency", "errors", "score", "deadline"):
        if word in reason:
            return word
    return "other"


def _phase(rule: Rule, seq: list[Round], start: int, factor: float, bake: int,
           deadline: int) -> str | None:
    """Why the phase rolls back (immediate, latency, errors, score, deadline), or None."""
    lb: list[float] = []
    lc: list[float] = []
    eb = ec = 0
    ratios: list[float] = []
    for i in range(deadline):
        r = seq[(start + i) % len(seq)]
        lb += r.base
        lc += [x * factor for x in r.cand]
        eb, ec = eb + r.base_errors, ec + r.cand_errors
        if r.base and r.cand:
            ratios.append(statistics.median(r.cand) * factor / statistics.median(r.base))
        if rule.judge is None:
            if i + 1 >= bake:
                return "latency" if statistics.median(lc) >= 1.2 * statistics.median(lb) \
                    else None
            continue
        c = compare(Samples.of(lb, eb), Samples.of(lc, ec), rule.judge,
                    tuple(ratios) if rule.use_rounds else ())
        if c.verdict is Verdict.ROLLBACK:
            return _why(c.reason)
        if c.verdict is Verdict.ADVANCE and i + 1 >= bake:
            return None
    return "deadline"  # no pass by the deadline


def replay(rule: Rule, pool: list[list[Round]], pol: EvolutionPolicy, factor: float,
           runs: int, seed: int) -> tuple[float, Counter[str]]:
    """(share of rollouts rolled back, why: reason × phase)."""
    why: Counter[str] = Counter()
    for run in range(runs):
        rng = random.Random(seed * 1_000_003 + run)  # the same draws for every rule
        for ph in pol.rollout.phases:
            seq = rng.choice(pool)
            bake = max(1, math.ceil(ph.min_bake_seconds / INTERVAL_S))
            deadline = max(bake, math.ceil(ph.deadline_seconds / INTERVAL_S))
            w = _phase(rule, seq, rng.randrange(len(seq)), factor, bake, deadline)
            if w is not None:
                why[f"{w}@{ph.name}"] += 1
                break
    return sum(why.values()) / runs, why


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gap", type=float, default=0.5,
                    help="seconds between probe rounds (the controller's: its reconcile "
                         "interval; shorter rounds are more alike)")
    args = ap.parse_args()
    cands, rounds, runs = (3, 60, 200) if args.quick else (6, 90, 1000)
    pol = EvolutionPolicy.model_validate(yaml.safe_load(
        (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"])
    pool = asyncio.run(measure(cands, rounds, args.gap))
    flat = [x for seq in pool for r in seq for x in r.base]
    per_proc = [statistics.median([x for r in seq for x in r.cand])
                / statistics.median([x for r in seq for x in r.base]) for seq in pool]
    ratios = sorted(r.ratio for seq in pool for r in seq if r.ratio is not None)
    print(f"measured: {cands} candidate processes × {rounds} paired rounds of {PROBES} "
          f"(gap {args.gap:g}s); baseline median {statistics.median(flat):.3f} ms; candidate/"
          f"baseline median per process {', '.join(f'{x:.2f}' for x in per_proc)}; per-round "
          f"ratio p10/p50/p90 {ratios[len(ratios) // 10]:.2f}/{ratios[len(ratios) // 2]:.2f}/"
          f"{ratios[9 * len(ratios) // 10]:.2f}")
    bakes = [max(1, math.ceil(p.min_bake_seconds / INTERVAL_S)) for p in pol.rollout.phases]
    print(f"replay: {runs} rollouts per case; phases "
          f"{', '.join(f'{p.name} {b} rounds' for p, b in zip(pol.rollout.phases, bakes))} "
          f"(bake at a {INTERVAL_S:g}s reconcile); judge asked after every round")
    rules = [Rule("judge", pol.judge), Rule("judge without round gate", pol.judge, False),
             Rule("fixed 1.2× p50 rule", None)]
    print(f"{'':34s}{'false rollbacks (identical)':>30s}{'detected (+50 % latency)':>28s}")
    rates: dict[str, dict[str, object]] = {}
    for rule in rules:
        fp, why = replay(rule, pool, pol, 1.0, runs, seed=11)
        tp, _ = replay(rule, pool, pol, 1.5, runs, seed=101)
        rates[rule.name] = {"false_rollback_rate": fp, "detection_rate": tp,
                            "false_rollback_reasons": dict(why)}
        print(f"{rule.name:34s}{fp:>30.1%}{tp:>28.1%}"
              + (f"   false: {', '.join(f'{k} {n}' for k, n in why.most_common())}"
                 if why else ""))
    ours = rates["judge"]
    path = write_result(
        "bench_rollout",
        {"false_rollback_rate": ours["false_rollback_rate"],
         "detection_rate_50pct_latency": ours["detection_rate"],
         "false_rollback_reasons": ours["false_rollback_reasons"],
         "baseline_median_ms": statistics.median(flat),
         "candidate_over_baseline_per_process": per_proc},
        {name: r for name, r in rates.items() if name != "judge"},
        {"quick": args.quick, "gap_seconds": args.gap, "candidate_processes": cands,
         "rounds_per_candidate": rounds, "rollouts_per_case": runs, "probes_per_round": PROBES,
         "reconcile_interval_seconds": INTERVAL_S,
         "phases": [p.model_dump() for p in pol.rollout.phases],
         "goals": {"false_rollback_rate": "< 0.01", "detection_rate_50pct_latency": "> 0.9"}})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
