"""NAB evaluation of the health monitor's streaming anomaly detector.

    python3 bench/nab_eval.py [--quick] [--data PATH]

Runs the product's detector (``StreamingDetector`` with the parameters of
``policies/health.yaml`` → ``health.anomaly.stream``) in streaming fashion (each row's score
from past rows only) over the 24 NAB files in ``<repo>/../shared/datasets/nab``, and, in the
same run, the baseline: a rolling 2σ z-score (window 100, score 1 when |z| > 2). Both are scored
with the NAB-style scorer of ``autonomous.health_monitor.nab`` on the standard, low-FP and
low-FN profiles (corpus threshold optimised per profile, as NAB does), and the detector also at
its own policy threshold. ``--quick`` scores the first 6 files only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autonomous.health_monitor.nab import PROFILES, default_root, load_corpus, score_corpus
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.resources.loader import load_tree

PUBLISHED = {"ARTime": 67.3, "Numenta HTM": 66.5, "Windowed Gaussian": 24.3}


def detector_scores(values: np.ndarray, params: StreamParams) -> np.ndarray:
    det = StreamingDetector(params)
    return np.array([det.update(float(x)).score for x in values])


def baseline_scores(values: np.ndarray, window: int = 100) -> np.ndarray:
    """Rolling z-score over the previous ``window`` rows; 1 when |z| > 2, else 0."""
    out = np.zeros(len(values))
    for i in range(10, len(values)):
        w = values[max(0, i - window):i]
        sd = w.std()
        out[i] = 1.0 if sd > 0 and abs(values[i] - w.mean()) / sd > 2 else 0.0
    return out


def policy_params() -> StreamParams:
    tree = load_tree(ROOT).tree
    if tree is None:
        raise SystemExit("the policy tree does not load: run `atlas-autonomous validate`")
    return StreamParams.from_policy(tree.policies["governed"]["health"]["anomaly"]["stream"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first 6 files only")
    ap.add_argument("--data", type=Path, default=default_root(ROOT), help="NAB subset folder")
    args = ap.parse_args()
    corpus = load_corpus(args.data)[: 6 if args.quick else None]
    params = policy_params()
    t0 = time.perf_counter()
    ours = {f.key: detector_scores(f.values, params) for f in corpus}
    rows = sum(len(f.values) for f in corpus)
    per_row_ms = (time.perf_counter() - t0) * 1000 / rows
    base = {f.key: baseline_scores(f.values) for f in corpus}
    grid = np.array([0.5, 0.9, 0.99, 0.995, 0.999, 0.9995, 0.9997, 0.9999, 0.99999, 0.999999])
    print(f"NAB subset: {len(corpus)} files, {rows} rows, "
          f"{sum(len(f.scorable_windows()) for f in corpus)} windows; detector {params}")
    print(f"{'profile':<20} {'detector':>9} {'(thr)':>9} {'at policy thr':>14} {'baseline 2σ':>12}")
    for prof in PROFILES:
        best = score_corpus(ours, corpus, prof, thresholds=grid)
        fixed = score_corpus(ours, corpus, prof, thresholds=np.array([params.threshold]))
        b = score_corpus(base, corpus, prof, thresholds=np.array([1.0]))
        print(f"{prof:<20} {best['score']:>9.1f} {best['threshold']:>9.4g} "
              f"{fixed['score']:>14.1f} {b['score']:>12.1f}")
    print(f"detector cost: {per_row_ms * 1000:.0f} µs per row; published (standard, this subset):"
          f" " + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()))


if __name__ == "__main__":
    main()
