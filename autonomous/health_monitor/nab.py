"""A NAB-style scorer (Numenta Anomaly Benchmark), written from the data set's README.

Per file: rows after the probationary period ``P = min(floor(0.15 n), 750)`` are scored; in
each labelled window only the earliest detection counts, weighted by a scaled sigmoid of its
position (left edge earns ``A_TP``); a missed window costs ``A_FN``; a detection outside every
window costs ``A_FP`` times a sigmoid of its distance to the last window that ended (full cost
before any window). One threshold per profile for the whole corpus, chosen to maximise the
raw score, which is normalised so that "detect nothing" is 0 and "perfect" is 100.

``load_corpus(root)`` reads ``<root>/data/<folder>/*.csv`` and ``labels/combined_windows.json``
(37 files in four categories); ``load_published(root, name, corpus)`` reads a published
detector's scores (``<root>/published/<name>/<folder>/<file>.csv``, one ``anomaly_score`` per
data row). ``Scorer(corpus)`` caches the per-row weights: ``best_threshold`` picks the corpus
threshold on some files, ``score`` scores any files at a given threshold (normalised over
those files' windows); ``choose`` picks one of several detection sets on some files, by the
pooled raw score, the best worst-category score (``maximin``) or the best mean category score
(``mean``, the policy's rule). ``score_corpus(scores, corpus, profile)`` does both on one set.
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
    "RULES",
    "NabFile",
    "Scorer",
    "candidate_thresholds",
    "category",
    "choose",
    "default_root",
    "load_corpus",
    "load_published",
    "scaled_sigmoid",
    "score_corpus",
]

FOLDERS = ("realAWSCloudwatch", "realKnownCause", "realAdExchange", "realTraffic")
RULES = ("pooled", "maximin", "mean")
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
    """Every CSV of the four folders with its windows as row indices."""
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


def category(key: str) -> str:
    """The folder part of a file key (``realTraffic/speed_6005.csv`` → ``realTraffic``)."""
    return key.split("/", 1)[0]


def load_published(root: Path, name: str, corpus: list[NabFile]) -> dict[str, np.ndarray]:
    """A published detector's per-row scores for every file of ``corpus``."""
    out = {}
    for f in corpus:
        with (root / "published" / name / f.key).open() as fh:
            col = np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)])
        if len(col) != len(f.values):
            raise ValueError(f"{name}/{f.key}: {len(col)} scores for {len(f.values)} rows")
        out[f.key] = col
    return out


def candidate_thresholds(allv: np.ndarray) -> np.ndarray:
    """Thresholds worth trying: quantiles dense towards the top, plus the top distinct values.

    The raw score only changes at a score value; detectors that put their alarms in the last
    0.01 % of rows (HTM's likelihood near 1) need the fine end.
    """
    q = np.quantile(allv, 1.0 - np.geomspace(0.5, 1e-6, 400))
    top = np.unique(allv)[-400:]
    return np.unique(np.concatenate([q, top]))


class Scorer:
    """The NAB-style scorer over one corpus, per-row weights computed once."""

    def __init__(self, corpus: list[NabFile]) -> None:
        self.files = {f.key: f for f in corpus}
        self.weights = {f.key: _weights(f) for f in corpus}

    def file_raw(self, scores: dict[str, np.ndarray], key: str, profile: str,
                 thr: float = 0.5) -> float:
        """Raw score of one file at threshold ``thr``."""
        return _raw(self.weights[key], scores[key] >= thr, PROFILES[profile])

    def raw(self, scores: dict[str, np.ndarray], keys: list[str], thr: float,
            profile: str) -> float:
        prof = PROFILES[profile]
        return sum(_raw(self.weights[k], scores[k] >= thr, prof) for k in keys)

    def normalise(self, raw: float, keys: list[str], profile: str) -> float:
        a_tp, a_fn, _ = PROFILES[profile]
        n_windows = sum(len(self.weights[k].windows) for k in keys)
        null, perfect = -a_fn * n_windows, a_tp * n_windows
        return 100.0 * (raw - null) / (perfect - null)

    def score(self, scores: dict[str, np.ndarray], keys: list[str], thr: float,
              profile: str) -> float:
        """Normalised score of ``keys`` at threshold ``thr``."""
        return self.normalise(self.raw(scores, keys, thr, profile), keys, profile)

    def best_threshold(self, scores: dict[str, np.ndarray], keys: list[str], profile: str,
                       thresholds: np.ndarray | None = None) -> tuple[float, float]:
        """``(threshold, raw)`` maximising the raw score of ``keys`` (ties: the lowest)."""
        if thresholds is None:
            thresholds = candidate_thresholds(np.concatenate([scores[k] for k in keys]))
        best = (-math.inf, 1.0)
        for thr in thresholds:
            raw = self.raw(scores, keys, float(thr), profile)
            if raw > best[0]:
                best = (raw, float(thr))
        return best[1], best[0]


def choose(sc: Scorer, runs: list[dict[str, np.ndarray]], keys: list[str], profile: str,
           rule: str = "mean") -> int:
    """Index of the detection set (0/1 per row) chosen on ``keys`` (ties: the first).

    ``pooled``: the best raw score summed over ``keys`` (the category with the most windows
    decides); ``maximin``: the best lowest normalised score among the categories of ``keys``;
    ``mean``: the best mean of the categories' normalised scores (each category weighs the
    same, whatever its number of windows).
    """
    if rule == "pooled":
        return int(np.argmax([sc.raw(r, keys, 0.5, profile) for r in runs]))
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}: one of {', '.join(RULES)}")
    groups = [[k for k in keys if category(k) == c] for c in sorted({category(k) for k in keys})]
    marks = [[sc.score(r, g, 0.5, profile) for g in groups] for r in runs]
    return int(np.argmax([min(m) if rule == "maximin" else sum(m) / len(m) for m in marks]))


def score_corpus(scores: dict[str, np.ndarray], corpus: list[NabFile],
                 profile: str = "standard", thresholds: np.ndarray | None = None
                 ) -> dict[str, float]:
    """Normalised NAB score of per-row anomaly scores, with the best corpus threshold."""
    sc = Scorer(corpus)
    keys = [f.key for f in corpus]
    thr, raw = sc.best_threshold(scores, keys, profile, thresholds)
    return {"score": sc.normalise(raw, keys, profile), "threshold": thr, "raw": raw}
