"""Rollout benchmark: rollback switch time through Traefik, and the judge — false rollbacks on
identical versions and detection of a +50 % latency regression, from repeated rollouts
replayed over *measured* paired probe rounds.

    python3 bench/bench_rollout.py            # 6 candidate processes, 1000 rollouts per case
    python3 bench/bench_rollout.py --quick    # 3 candidate processes, 200 rollouts per case
    python3 bench/bench_rollout.py --gap 0.2  # stress: rounds 0.2 s apart (more correlated)

Measure: one baseline sample-stack process (``nexus`` 1.0.0, started first and warmed like a
running service) and, one after another, fresh candidate processes of the same code (started
the way the controller starts one); against each, the controller's own paired probe rounds
(``autonomous.evolution.probes.paired_round``, ``probes_per_observe`` pairs, one warm-up round
dropped), ``--gap`` seconds apart (default: the policy's ``judge.min_round_interval_seconds``,
1 s — the closest the controller takes rounds; its reconcile interval (config/autonomous.yaml)
is longer, so the default is the harder case: on this 2-core host a 10-round window's median
ratio of identical code spanned 0.91–1.06 at 0.5 s but 0.88–1.31 at 0.05 s, and a good
candidate measured ×2 for ~1 s at a time in rounds 0.2 s apart). The rounds keep their order:
a slow burst stays a burst.

Replay: each rollout goes through every policy phase the way the controller does — per
reconcile one round of the candidate process picked for the phase (consecutive rounds from a
random start), the judge asked on everything so far (plus the per-round ratios), ROLLBACK acted
on at once, ADVANCE only after the phase's bake (``min_bake_seconds`` / the evolution
controller's reconcile interval, in rounds), no pass by the deadline rolls back. The +50 %
case multiplies the candidate's measured latencies by 1.5. Figures beside each other, same
draws: the judge; the judge without the round gate (rounds not passed: what the round gate
buys); the judge before stop 23 (immediate rollback on one window of rounds, a round's ratio
as the ratio of its medians rather than the median of its per-pair ratios); and a fixed rule
(candidate p50 ≥ 1.2 × baseline p50 at the end of a phase's bake). "fresh-start false": the
CANARY of each measured candidate process replayed from its very first round (the controller
starts the candidate with the rollout, so its start-up rounds are judged first) — a count over
the few processes measured, not a rate.

Switch time (:func:`switch_times`, ``--switches``): repeated rollbacks at 100 % candidate
weight through the operator's own evolution → gateway path and a real Traefik, timed from the
decision to the first answer of the old version at the front.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import yaml
from _common import ROOT, free_port, pct, tree_with, wait_http, write_result  # noqa: I001

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


# The front's client: its own process (a client is never inside the operator: a thread here
# would share the operator's GIL and slow both), requests back to back on one keep-alive
# connection, one line per answer: when the request was sent, when the answer came
# (time.perf_counter(): CLOCK_MONOTONIC, the same clock in every process), its version.
_CLIENT = """
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
while True:
    t0 = time.perf_counter()
    try:
        c.request("GET", sys.argv[2])
        v = json.loads(c.getresponse().read()).get("version")
    except (OSError, ValueError, http.client.HTTPException):
        v = None
        c.close()
    sys.stdout.write(f"{t0!r} {time.perf_counter()!r} {v}\\n")
    sys.stdout.flush()
"""


class FrontClient:
    """Steady back-to-back requests to the front from another process: each answer's send
    time, arrival time and version."""

    def __init__(self, port: int, path: str = "/health") -> None:
        self.port, self.path = port, path
        self.answers: list[tuple[float, float, str | None]] = []
        self.proc: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _CLIENT, str(self.port), self.path],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            sent, got, v = line.split()
            self.answers.append((float(sent), float(got), None if v == "None" else v))

    def close(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        if self.thread.is_alive():
            self.thread.join(5)

    def first_after(self, t0: float, version: str) -> float | None:
        """When the answer came to the first request *sent* at or after ``t0`` that
        ``version`` answered (a request already in flight at ``t0`` does not count)."""
        first = None
        for sent, got, v in reversed(self.answers):  # newest first, back to t0
            if sent < t0:
                break
            if v == version:
                first = got
        return first

    def spacing(self) -> float | None:
        """Median gap between an answer and the next request (the client's own delay)."""
        a = self.answers
        gaps = [n[0] - p[1] for p, n in zip(a, a[1:])]
        return statistics.median(gaps) if gaps else None


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.002)  # polling a real condition (answers at the front)
    return False


async def _settled(gw: Any, timeout: float) -> bool:
    """The gateway idle with nothing left to write and Traefik serving its document (it may
    answer from the candidate while still applying an older one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (not gw.lock.locked() and gw.traefik is not None
                and not gw.diff(None, await gw.observe())
                and await asyncio.to_thread(gw.traefik.in_force)):
            return True
        await asyncio.sleep(0.01)  # polling a real condition (the gateway's own state)
    return False


async def switch_times(n: int) -> list[tuple[float | None, float, float | None]]:
    """Rollback switch time through the operator's own path: the evolution controller's
    rollback unpublishes the candidate (``CandidatePool.unpublish``, what its act does
    after the transition is recorded); that closes the gateway's rollback gate, Traefik's
    next health check of the candidate takes it out and its failover sends every path to the
    old version; the gateway controller, woken by the ``evolution.candidate`` event (the
    controller manager runs every loop, as in the operator), then rewrites Traefik's dynamic
    configuration without the candidate. Measured: the decision timestamp (before the
    unpublish) to the answer to the first request *sent* after it that the old version
    answered, through Traefik, while a client in its own process sends requests back to
    back; the candidate serves 100 % (FULL, the old version still running) before each
    rollback. Per rollback: (switch seconds, None when not switched within 5 s; seconds
    until the gateway controller had written the new document; seconds until Traefik's
    check met the closed gate, None without a gate)."""
    from autonomous.core.clock import SystemClock
    from autonomous.testing import make_context
    from controllers.evolution import EvolutionController
    from controllers.evolution_candidates import Candidate
    from controllers.gateway import GatewayController
    from controllers.manager import ControllerManager

    out: list[tuple[float | None, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        port, front, cport = free_port(), free_port(), free_port()
        root = tree_with(t / "root", {"nexus": port, "nexus-front": front}, free_port())
        old, new = _start(port, "1.0.0"), _start(cport, "2.0.0")
        ctx = make_context(t, root=root, clock=SystemClock())
        ctx.governance.set_mode("growth", actor="bench")
        evo, gw = EvolutionController(ctx), GatewayController(ctx)
        gate = getattr(gw, "gate", None)  # None: a checkout from before the rollback gate
        m = ControllerManager(ctx, [gw, evo])
        client = FrontClient(front)
        try:
            await m.start()  # every controller's loop, woken by the events it watches
            await _until(lambda: gw.traefik is not None and gw.traefik.live(), 30)
            client.start()
            for _ in range(n):
                evo.retiring.clear()
                evo.candidates["nexus"] = Candidate("nexus", "2.0.0", cport, 100, "2.0.0")
                ctx.bus.publish("evolution.candidate", service="nexus", port=cport)
                t1 = time.perf_counter()
                if not await _until(lambda: client.first_after(t1, "2.0.0") is not None, 5):
                    raise RuntimeError("the front never served the candidate")
                # a rollback comes long after the last weight change: the gateway is idle
                if not await _settled(gw, 10):
                    raise RuntimeError("the gateway did not settle on the candidate")
                t2 = time.perf_counter()
                if not await _until(lambda: client.first_after(t2, "2.0.0") is not None, 5):
                    raise RuntimeError("the front does not serve the candidate")
                doc = gw.workdir / "dynamic" / "atlas.yaml"
                before = doc.stat().st_mtime_ns
                wall0, t0 = time.time(), time.perf_counter()  # the rollback decision
                evo.pool.unpublish("nexus")  # publishes evolution.candidate: the gateway wakes
                await _until(lambda: client.first_after(t0, "1.0.0") is not None, 5)
                hit = client.first_after(t0, "1.0.0")
                await _until(lambda: doc.stat().st_mtime_ns != before, 5)
                written = doc.stat().st_mtime - wall0
                seen = gate.closed_at.get(("nexus", cport)) if gate is not None else None
                out.append((None if hit is None else hit - t0, written,
                            None if seen is None else seen - t0))
            gap = client.spacing()
            print(f"front client: {len(client.answers)} answers, median gap between an answer "
                  f"and the next request {gap * 1e3:.3f} ms" if gap is not None else "")
        finally:
            client.close()
            evo.candidates.clear()
            evo.retiring.clear()
            await m.stop()
            terminate(old)
            terminate(new)
            ctx.store.close()
    return out


@dataclass
class Rule:
    name: str
    judge: JudgePolicy | None  # None: the fixed p50 rule
    use_rounds: bool = True
    per_pair: bool = True  # a round's ratio: median of per-pair ratios (else ratio of medians)


def _ratio(rule: Rule, r: Round) -> float | None:
    return r.ratio if rule.per_pair else r.ratio_of_medians


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
        if (q := _ratio(rule, r)) is not None:
            ratios.append(q * factor)
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


def fresh_start(rule: Rule, pool: list[list[Round]], pol: EvolutionPolicy,
                factor: float) -> int:
    """Rollouts whose CANARY, replayed from the candidate process's first round (the
    controller starts it with the rollout: its start-up rounds come first), rolls back."""
    ph = pol.rollout.phases[0]
    bake = max(1, math.ceil(ph.min_bake_seconds / INTERVAL_S))
    deadline = max(bake, math.ceil(ph.deadline_seconds / INTERVAL_S))
    return sum(_phase(rule, seq, 0, factor, bake, deadline) is not None for seq in pool)


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
    ap.add_argument("--gap", type=float, default=None,
                    help="seconds between probe rounds (default: the policy's "
                         "judge.min_round_interval_seconds, the closest the controller takes "
                         "them; its reconcile interval is longer; closer rounds are more alike)")
    ap.add_argument("--switches", type=int, default=None,
                    help="rollbacks timed through Traefik (default 20, --quick 10; 0: skip)")
    ap.add_argument("--switch-only", action="store_true",
                    help="time the rollback switch only (no judge measurement or replay)")
    args = ap.parse_args()
    cands, rounds, runs = (3, 50, 200) if args.quick else (6, 90, 1000)
    n_switch = args.switches if args.switches is not None else (10 if args.quick else 20)
    switch = asyncio.run(switch_times(n_switch)) if n_switch else []
    done = [x * 1000 for x, _, _ in switch if x is not None]
    wrote = [w * 1000 for _, w, _ in switch]
    gated = [g * 1000 for _, _, g in switch if g is not None]
    if switch:
        print(f"rollback switch (decision → first answer of the old version at the front, "
              f"through Traefik; the candidate at 100 %), {len(switch)} rollbacks: "
              + (f"p50 {pct(done, 50):.1f} ms, p95 {pct(done, 95):.1f} ms, max "
                 f"{max(done):.1f} ms" if done else "none switched")
              + (f"; {len(switch) - len(done)} not within 5 s" if len(done) < len(switch)
                 else "") + " (goal: p95 < 100 ms); "
              + (f"Traefik's check met the closed rollback gate after p50 {pct(gated, 50):.1f} "
                 f"ms, p95 {pct(gated, 95):.1f} ms (no reload on the switch's path); "
                 if gated else "")
              + f"new document written by the gateway controller after p50 "
              f"{pct(wrote, 50):.1f} ms, p95 {pct(wrote, 95):.1f} ms")
    if args.switch_only:
        return
    pol = EvolutionPolicy.model_validate(yaml.safe_load(
        (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"])
    if args.gap is None:
        args.gap = pol.judge.min_round_interval_seconds
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
    before = pol.judge.model_copy(update={"immediate_windows": 1})
    rules = [Rule("judge", pol.judge),
             Rule("judge before (1 window, ratio of medians)", before, per_pair=False),
             Rule("judge without round gate", pol.judge, False),
             Rule("fixed 1.2× p50 rule", None)]
    print(f"{'':44s}{'false rollbacks':>16s}{'detected +50 %':>16s}{'fresh-start false':>19s}")
    rates: dict[str, dict[str, object]] = {}
    for rule in rules:
        fp, why = replay(rule, pool, pol, 1.0, runs, seed=11)
        tp, _ = replay(rule, pool, pol, 1.5, runs, seed=101)
        fresh = fresh_start(rule, pool, pol, 1.0)
        rates[rule.name] = {"false_rollback_rate": fp, "detection_rate": tp,
                            "false_rollback_reasons": dict(why),
                            "fresh_start_false_rollbacks": fresh,
                            "fresh_start_rollouts": len(pool)}
        print(f"{rule.name:44s}{fp:>16.1%}{tp:>16.1%}{f'{fresh}/{len(pool)}':>19s}"
              + (f"   false: {', '.join(f'{k} {n}' for k, n in why.most_common())}"
                 if why else ""))
    ours = rates["judge"]
    path = write_result(
        "bench_rollout",
        {"false_rollback_rate": ours["false_rollback_rate"],
         "detection_rate_50pct_latency": ours["detection_rate"],
         "fresh_start_false_rollbacks": ours["fresh_start_false_rollbacks"],
         "rollback_switch_p50_ms": pct(done, 50) if done else None,
         "rollback_switch_p95_ms": pct(done, 95) if done else None,
         "rollback_switch_max_ms": max(done) if done else None,
         "rollback_switches": len(switch),
         "rollback_config_written_p50_ms": pct(wrote, 50) if wrote else None,
         "rollback_config_written_p95_ms": pct(wrote, 95) if wrote else None,
         "rollback_gate_seen_p50_ms": pct(gated, 50) if gated else None,
         "rollback_gate_seen_p95_ms": pct(gated, 95) if gated else None,
         "rollback_switches_not_within_5s": len(switch) - len(done),
         "false_rollback_reasons": ours["false_rollback_reasons"],
         "baseline_median_ms": statistics.median(flat),
         "candidate_over_baseline_per_process": per_proc},
        {name: r for name, r in rates.items() if name != "judge"},
        {"quick": args.quick, "gap_seconds": args.gap, "candidate_processes": cands,
         "rounds_per_candidate": rounds, "rollouts_per_case": runs, "probes_per_round": PROBES,
         "reconcile_interval_seconds": INTERVAL_S,
         "phases": [p.model_dump() for p in pol.rollout.phases],
         "goals": {"false_rollback_rate": "< 0.01", "detection_rate_50pct_latency": "> 0.9",
                   "rollback_switch_p95_ms": "< 100"}})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
