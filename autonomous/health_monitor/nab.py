"""A NAB-style scorer (Numenta Anomaly Benchmark), written from the data set's README.

Per file: rows after the probationary period ``P = min(floor(0.15 n), 750)`` are scored; in
each labelled window only the earliest detection counts, weighted by a scaled sigmoid of its
position (left edge earns ``A_TP``); a missed window costs ``A_FN``; a detection outside every
window costs ``A_FP`` times a sigmoid of its distance to the last window that ended (full cost
before any window). One threshold per profile for the whole corpus, chosen to maximise the
raw score, which is normalised so that "detect nothing" is 0 and "perfect" is 100.

``load_corpus(root)`` reads ``<root>/data/<folder>/*.csv`` and ``labels/combined_windows.json``;
``score_corpus(scores, corpus, profile)`` returns the normalised score and its threshold.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES",
    "NabFile",
    "default_root",
    "load_corpus",
    "scaled_sigmoid",
    "score_corpus",
]

FOLDERS = ("realAWSCloudwatch", "realKnownCause")
PROFILES: dict[str, tuple[float, float, float]] = {  # (A_TP, A_FN, A_FP)
    "standard": (1.0, 1.0, 0.11),
    "reward_low_FP_rate": (1.0, 1.0, 0.22),
    "reward_low_FN_rate": (1.0, 2.0, 0.11),
}


def default_root(repo: Path | None = None) -> Path:
    """``<repo>/../shared/datasets/nab`` (the shared folder sits beside the checkout)."""
    repo = repo or Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "datasets" / "nab"


def scaled_sigmoid(y: float) -> float:
    """NAB's ``s(y) = 2 / (1 + e^(5y)) - 1``, and -1 beyond y = 3."""
    return -1.0 if y > 3 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class NabFile:
    """One series: values, timestamps (epoch s), windows as row-index pairs, probation."""

    key: str
    ts: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * len(self.values)), 750)

    def scorable_windows(self) -> list[tuple[int, int]]:
        return [(lo, hi) for lo, hi in self.windows if hi >= self.probation]


def _parse_ts(text: str) -> float:
    return datetime.strptime(text.split(".")[0], "%Y-%m-%d %H:%M:%S").timestamp()


def load_corpus(root: Path) -> list[NabFile]:
    """Every CSV of the two server-metric folders with its windows as row indices."""
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for folder in FOLDERS:
        for path in sorted((root / "data" / folder).glob("*.csv")):
            key = f"{folder}/{path.name}"
            with path.open() as fh:
                rows = list(csv.DictReader(fh))
            ts = np.array([_parse_ts(r["timestamp"]) for r in rows])
            values = np.array([float(r["value"]) for r in rows])
            index = {t: i for i, t in enumerate(ts)}
            windows = [(index[_parse_ts(a)], index[_parse_ts(b)]) for a, b in labels.get(key, [])]
            files.append(NabFile(key, ts, values, windows))
    return files


@dataclass
class _Weights:
    """Per-row constants of one file: window id, TP weight inside, FP weight outside."""

    window_of: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    windows: list[tuple[int, int]]
    probation: int


def _weights(f: NabFile) -> _Weights:
    n = len(f.values)
    window_of = np.full(n, -1)
    tp = np.zeros(n)
    fp = np.full(n, -1.0)
    wins = f.scorable_windows()
    for k, (lo, hi) in enumerate(wins):
        width = hi - lo + 1
        for i in range(lo, hi + 1):
            window_of[i] = k
            tp[i] = scaled_sigmoid(-(hi - i + 1) / width) / scaled_sigmoid(-1.0)
    last: tuple[int, int] | None = None
    ends = sorted(wins, key=lambda w: w[1])
    j = 0
    for i in range(n):
        while j < len(ends) and ends[j][1] < i:
            last = ends[j]
            j += 1
        if window_of[i] < 0 and last is not None:
            lo, hi = last
            fp[i] = scaled_sigmoid((i - hi) / max(hi - lo, 1))
    return _Weights(window_of, tp, fp, wins, f.probation)


def _raw(w: _Weights, detected: np.ndarray, profile: tuple[float, float, float]) -> float:
    a_tp, a_fn, a_fp = profile
    det = detected.copy()
    det[: w.probation] = False
    total = a_fp * float(w.fp[det & (w.window_of < 0)].sum())
    for lo, hi in w.windows:
        hits = np.flatnonzero(det[lo: hi + 1])
        total += a_tp * w.tp[lo + hits[0]] if hits.size else -a_fn
    return total


def score_corpus(scores: dict[str, np.ndarray], corpus: list[NabFile],
                 profile: str = "standard", thresholds: np.ndarray | None = None
                 ) -> dict[str, float]:
    """Normalised NAB score of per-row anomaly scores, with the best corpus threshold."""
    weights = {f.key: _weights(f) for f in corpus}
    prof = PROFILES[profile]
    if thresholds is None:
        allv = np.concatenate([scores[f.key] for f in corpus])
        thresholds = np.unique(np.quantile(allv, np.linspace(0.5, 1.0, 201)))
    best = (-math.inf, 1.0)
    for thr in thresholds:
        raw = sum(_raw(weights[f.key], scores[f.key] >= thr, prof) for f in corpus)
        best = max(best, (raw, float(thr)))
    n_windows = sum(len(w.windows) for w in weights.values())
    null, perfect = -prof[1] * n_windows, prof[0] * n_windows
    return {"score": 100.0 * (best[0] - null) / (perfect - null), "threshold": best[1],
            "raw": best[0]}
