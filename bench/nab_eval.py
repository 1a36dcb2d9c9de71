"""NAB evaluation of the health monitor's streaming detector beside four published detectors.

    python3 bench/nab_eval.py [--data PATH] [--no-loco] [--cache DIR]

Runs the product's detector (``StreamingDetector``, parameters from ``policies/health.yaml`` →
``health.anomaly.stream``) in streaming fashion over the 37 NAB files of
``<repo>/../shared/datasets/nab`` (four categories) and scores, with ONE scorer
(``autonomous.health_monitor.nab``), its detections beside the result files that four published
detectors wrote for the same rows (``published/``: numenta = HTM, ARTime, contextOSE,
windowedGaussian). Standard, low-FP and low-FN profiles; per category and overall.

Thresholds: ours is the detector's own ``threshold`` (a row scores 1 when the live path would
raise a detection, else 0), so the benchmark scores exactly what the product alarms on. The
published detectors get the best corpus-wide threshold per profile (as NAB does), which can
only flatter them.

Leave-one-category-out (LOCO): for each category, the detector's parameters (threshold
included) are chosen from ``GRID`` on the other three categories only, then scored on the
held-out one; the published detectors' thresholds are chosen the same way (on the three) and
printed beside ours on the same held-out category. Three selection rules are printed:
``pooled`` (best raw score summed over the three categories' files), ``maximin`` (best
worst-category normalised score of the three) and ``mean`` (best mean of the three
categories' normalised scores), the rule the policy uses (``POLICY_RULE``): each category
weighs the same, and the search may pick a setting that is much better on two categories and a
little worse on the third, which the maximin rule never does. Per-file score arrays of every
grid setting are cached (``--cache``, keyed by the detector source without its docstring, and
the setting). The policy's values are what the ``POLICY_RULE`` search picks on all 37 files
(printed last, with whether the policy in force equals it). The figures measured with each
rule are recorded in the detector's docstring.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autonomous.health_monitor import stream_detector
from autonomous.health_monitor.nab import (
    PROFILES,
    RULES,
    NabFile,
    Scorer,
    category,
    choose,
    default_root,
    load_corpus,
    load_published,
)
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.resources.loader import load_tree
from bench._common import write_result  # noqa: E402

PUBLISHED = {"HTM": "numenta", "ARTime": "ARTime", "contextOSE": "contextOSE",
             "windowedGaussian": "windowedGaussian"}
GRID = {  # the LOCO search (3 × 3 × 3 × 2 × 2 × 3 = 324 settings); others from the policy
    "threshold": (0.999, 0.9997, 0.99995),
    "suppress": (60, 120, 240),
    "change_sigma": (1.5, 2.0, 3.0),
    "likelihood_window": (800, 2000),
    "season_repeats": (0, 3),  # off first: on a tie the plainer detector is chosen
    "quiet": (0, 30, 60),
}
POLICY_RULE = "mean"  # the selection rule the policy's values come from (LOCO: the same)
Scores = dict[str, np.ndarray]


def policy_params() -> StreamParams:
    tree = load_tree(ROOT).tree
    if tree is None:
        raise SystemExit("the policy tree does not load: run `atlas-autonomous validate`")
    return StreamParams.from_policy(tree.policies["governed"]["health"]["anomaly"]["stream"])


def detections(values: np.ndarray, params: StreamParams) -> np.ndarray:
    """1.0 where the streaming detector raises a detection (each from past rows only)."""
    det = StreamingDetector(params)
    return np.array([1.0 if det.update(float(x)).detected else 0.0 for x in values])


def run_setting(corpus: list[NabFile], params: StreamParams, cache: Path | None) -> Scores:
    """Per-file detections of one setting (from the cache when the source is unchanged)."""
    path = None
    if cache is not None:
        src = _code(Path(stream_detector.__file__).read_bytes())
        key = hashlib.sha256(src + repr(asdict(params)).encode()).hexdigest()[:20]
        path = cache / f"{key}.npz"
        if path.exists():
            with np.load(path) as z:
                return {f.key: z[str(i)] for i, f in enumerate(corpus)}
    out = {f.key: detections(f.values, params) for f in corpus}
    if path is not None:
        arrays: dict[str, Any] = {str(i): out[f.key] for i, f in enumerate(corpus)}
        np.savez_compressed(path, **arrays)
    return out


def _code(src: bytes) -> bytes:
    """The module source without its leading docstring (the record there changes no result)."""
    if src.startswith(b'"""'):
        return src.split(b'"""', 2)[2]
    return src


def grid(base: StreamParams) -> list[StreamParams]:
    names = list(GRID)
    return [replace(base, **dict(zip(names, combo)))  # type: ignore[arg-type]
            for combo in itertools.product(*GRID.values())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_root(ROOT), help="NAB folder")
    ap.add_argument("--no-loco", action="store_true", help="skip the leave-one-category-out")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "atlas-nab",
                    help="cache of per-file detections per grid setting")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.data)
    sc = Scorer(corpus)
    keys = [f.key for f in corpus]
    cats = sorted({category(k) for k in keys})
    by_cat = {c: [k for k in keys if category(k) == c] for c in cats}
    params = policy_params()
    rows = sum(len(f.values) for f in corpus)

    t0 = time.perf_counter()
    ours = {f.key: detections(f.values, params) for f in corpus}
    us_row = (time.perf_counter() - t0) * 1e6 / rows
    pub = {name: load_published(args.data, folder, corpus) for name, folder in PUBLISHED.items()}
    print(f"NAB: {len(corpus)} files, {rows} rows, "
          f"{sum(len(sc.weights[k].windows) for k in keys)} scored windows; "
          f"categories {', '.join(f'{c} ({len(by_cat[c])})' for c in cats)}")
    print(f"ours: {params}")
    print(f"ours: {us_row:.1f} µs per row per metric (one metric per file, {rows} rows)")

    figures: dict[str, float | None] = {"us_per_row": round(us_row, 2)}
    peers: dict[str, float | None] = {}
    for prof in PROFILES:
        thr = {n: sc.best_threshold(s, keys, prof)[0] for n, s in pub.items()}
        figures[f"score_{prof}"] = round(sc.score(ours, keys, 0.5, prof), 2)
        for n, s in pub.items():
            peers[f"{n}_score_{prof}"] = round(sc.score(s, keys, thr[n], prof), 2)
        print(f"\n{prof} (published: best corpus-wide threshold; ours: policy threshold)")
        print(f"{'':<20}{'ours':>8}" + "".join(f"{n:>17}" for n in pub))
        for c in cats + ["overall"]:
            ks = keys if c == "overall" else by_cat[c]
            line = f"{c:<20}{sc.score(ours, ks, 0.5, prof):>8.1f}"
            line += "".join(f"{sc.score(s, ks, thr[n], prof):>17.1f}" for n, s in pub.items())
            print(line)

    meta = {"files": len(corpus), "rows": rows, "params": str(params),
            "peers": "published detections, best corpus-wide threshold; ours: policy threshold"}
    if args.no_loco:
        write_result("nab_eval", figures, peers, {**meta, "loco": False})
        return
    t0 = time.perf_counter()
    settings = grid(params)
    runs = [run_setting(corpus, p, args.cache) for p in settings]
    print(f"\nLOCO: {len(settings)} settings of {', '.join(GRID)} "
          f"({time.perf_counter() - t0:.0f} s with the cache at {args.cache})")
    for prof, rule in itertools.product(PROFILES, RULES):
        mark = " (the policy's rule)" if rule == POLICY_RULE else ""
        print(f"\nLOCO {prof}, {rule}{mark}: chosen on the other three, scored on the held-out"
              " one")
        print(f"{'held out':<20}{'ours':>8}{'HTM':>8}{'ARTime':>8}  chosen setting")
        means = np.zeros(3)
        for c in cats:
            train = [k for k in keys if category(k) != c]
            i = choose(sc, runs, train, prof, rule)
            figs = [sc.score(runs[i], by_cat[c], 0.5, prof)]
            for n in ("HTM", "ARTime"):
                fold_thr = sc.best_threshold(pub[n], train, prof)[0]
                figs.append(sc.score(pub[n], by_cat[c], fold_thr, prof))
            means += np.array(figs) / len(cats)
            chosen = ", ".join(f"{k}={getattr(settings[i], k)}" for k in GRID)
            print(f"{c:<20}" + "".join(f"{x:>8.1f}" for x in figs) + f"  {chosen}")
        print(f"{'mean':<20}" + "".join(f"{x:>8.1f}" for x in means))
        figures[f"loco_{prof}_{rule}_mean"] = round(float(means[0]), 2)
        peers[f"HTM_loco_{prof}_{rule}_mean"] = round(float(means[1]), 2)
        peers[f"ARTime_loco_{prof}_{rule}_mean"] = round(float(means[2]), 2)
    for rule in RULES:
        i = choose(sc, runs, keys, "standard", rule)
        note = ""
        if rule == POLICY_RULE:
            figures["policy_is_the_pick"] = float(settings[i] == params)
            note = ", the policy's rule: " + ("the policy in force" if settings[i] == params
                                              else "NOT the policy in force")
        print(f"\nsearch on all {len(corpus)} files (standard, {rule}{note}): "
              + ", ".join(f"{k}={getattr(settings[i], k)}" for k in GRID)
              + f" → {sc.score(runs[i], keys, 0.5, 'standard'):.1f} overall, "
              + ", ".join(f"{c} {sc.score(runs[i], by_cat[c], 0.5, 'standard'):.1f}"
                          for c in cats))
    write_result("nab_eval", figures, peers, {**meta, "loco": True})


if __name__ == "__main__":
    main()
