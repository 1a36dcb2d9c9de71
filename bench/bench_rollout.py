"""Judge benchmark: false rollbacks on identical versions and detection of a +50 % latency
regression, from repeated simulated rollouts over *measured* latencies.

    python3 bench/bench_rollout.py            # 1000 rollouts per case
    python3 bench/bench_rollout.py --quick    # 200

First N real loopback GETs to a Python HTTP backend give a latency pool; each rollout then
draws, per phase (CANARY, BETA, STABLE, FULL), `min_samples` latencies per version from the pool
(the candidate's multiplied by 1.0 or 1.5) and asks the judge; a rollout is rolled back when any
phase's verdict is ROLLBACK. Peer: a fixed threshold rule (roll back when the candidate's p50 is
≥ 1.2 × the baseline's, no statistics), on the same draws.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time

import httpx
import yaml

from _common import BACKEND, ROOT, free_port, wait_http  # noqa: I001

from autonomous.evolution.metrics_comparator import Samples, Verdict, compare
from autonomous.resources.policy.evolution import EvolutionPolicy



def pool(n: int) -> list[float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BACKEND, str(port)])
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        out = []
        with httpx.Client(timeout=2, trust_env=False) as c:
            for _ in range(n):
                t0 = time.perf_counter()
                c.get(url)
                out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        proc.terminate()
        proc.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    runs = 200 if ap.parse_args().quick else 1000
    pol = EvolutionPolicy.model_validate(yaml.safe_load(
        (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"])
    judge, phases = pol.judge, len(pol.rollout.phases)
    lat = pool(3000)
    rng = random.Random(7)
    k = judge.min_samples
    print(f"latency pool: {len(lat)} real GETs, median {statistics.median(lat):.3f} ms; "
          f"{runs} rollouts per case, {phases} phases, {k} samples per version per phase")
    for factor in (1.0, 1.5):
        ours = peer = 0
        for _ in range(runs):
            rb_ours = rb_peer = False
            for _ in range(phases):
                b = rng.choices(lat, k=k)
                c = [x * factor for x in rng.choices(lat, k=k)]
                if compare(Samples.of(b), Samples.of(c), judge).verdict is Verdict.ROLLBACK:
                    rb_ours = True
                if statistics.median(c) >= 1.2 * statistics.median(b):
                    rb_peer = True
            ours += rb_ours
            peer += rb_peer
        what = "false rollbacks (identical)" if factor == 1.0 else "detected (+50 % latency)"
        print(f"{what:30s} judge {ours / runs:6.1%}   fixed 1.2× p50 rule {peer / runs:6.1%}")


if __name__ == "__main__":
    main()
