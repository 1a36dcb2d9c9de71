"""PatternAnalyzer (issue 12 item 1): usage seasonality, peaks, bursts, anomalies, the next
action, and insights citing the series and entities behind them.

Inputs are plain rows (``Point(series, ts, value)``, and decision sequences keyed by the
entity they belong to); nothing here reads the store, the graph or a clock. Thresholds come
from ``policies/learning_tuning.yaml`` (section ``learning_patterns``). Times are UTC epoch
seconds; hours and weekdays are UTC.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from autonomous.core.clock import iso
from autonomous.resources.policy.learning_tuning import PatternPolicy

__all__ = ["Anomaly", "Insight", "NextAction", "PatternAnalyzer", "Point", "UsagePattern",
           "decision_sequences"]

DAY, WEEK = 86400, 7 * 86400


@dataclass(frozen=True)
class Point:
    series: str
    ts: float
    value: float


@dataclass(frozen=True)
class UsagePattern:
    series: str
    buckets: int
    stated: bool  # False: too little history; ``reason`` says why
    reason: str = ""
    daily_acf: float | None = None
    weekly_acf: float | None = None
    daily: bool = False
    weekly: bool = False
    peak_hours: tuple[int, ...] = ()
    hourly_mean: tuple[float, ...] = ()
    bursts: tuple[tuple[float, float, float], ...] = ()  # (bucket ts, value, expected)


@dataclass(frozen=True)
class Anomaly:
    series: str
    ts: float
    value: float
    expected: float
    score: float  # robust z: (value - expected) / (1.4826·MAD of residuals)


@dataclass(frozen=True)
class NextAction:
    action: str | None
    probability: float
    support: int  # training transitions behind the prediction
    accuracy: float | None  # held-out accuracy of the model
    baseline_accuracy: float | None  # held-out accuracy of "always the most frequent"
    evaluated: int  # held-out transitions
    cites: tuple[str, ...]  # entities whose sequences show the predicted transition


@dataclass(frozen=True)
class Insight:
    kind: str
    text: str
    cites: tuple[str, ...]
    evidence: dict[str, float | int | str] = field(default_factory=dict)


def decision_sequences(rows: Iterable[tuple[str, float, str]]) -> dict[str, list[str]]:
    """``(entity, ts, action)`` rows (e.g. the graph's decisions with the resource they are
    about) as one sequence per entity, oldest first; entities ordered by their first row."""
    ordered = sorted(rows, key=lambda r: r[1])
    out: dict[str, list[str]] = {}
    for entity, _, action in ordered:
        out.setdefault(entity, []).append(action)
    return out


Series = dict[str, tuple[np.ndarray, np.ndarray]]


def _buckets(points: Sequence[Point], width: int, agg: str) -> Series:
    """Per series: bucket start times (contiguous, empty buckets 0 for sums) and values."""
    grouped: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in points:
        grouped[p.series][int(p.ts // width)].append(p.value)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for series, by in grouped.items():
        idx = np.arange(min(by), max(by) + 1)
        if agg == "sum":
            vals = np.array([sum(by.get(int(i), [])) for i in idx], dtype=float)
        else:
            vals = np.array([np.mean(by[int(i)]) if int(i) in by else np.nan for i in idx])
            vals = np.where(np.isnan(vals), np.nanmean(vals), vals)
        out[series] = (idx * width, vals)
    return out


def _acf(v: np.ndarray, lag: int) -> float | None:
    """Correlation of the series with itself ``lag`` buckets later (needs two periods)."""
    if lag <= 0 or len(v) < 2 * lag:
        return None
    a, b = v[:-lag], v[lag:]
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _seasonal_baseline(ts: np.ndarray, v: np.ndarray, weekly: bool) -> np.ndarray:
    """The usual value of each bucket: the median of its hour of day, scaled (non-negative
    series) or shifted (others) by its weekday's usual level when ``weekly``. Medians over
    many days, so one odd bucket moves neither."""
    hours = ((ts % DAY) // 3600).astype(int)
    days = (ts // DAY).astype(int)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    ratio = bool(v.min() >= 0)
    level = np.ones(7) if ratio else np.zeros(7)
    if weekly:
        uniq = np.unique(days)
        totals = np.array([v[days == d].mean() for d in uniq])
        mid = float(np.median(totals))
        for wd in range(7):
            sel = totals[(uniq + 3) % 7 == wd]
            if len(sel):
                level[wd] = (float(np.median(sel)) / mid if mid > 0 else 1.0) if ratio \
                    else float(np.median(sel)) - mid
    flat = v / np.where(level[weekday] > 0, level[weekday], 1.0) if ratio else v - level[weekday]
    hod = np.array([float(np.median(flat[hours == h])) if (hours == h).any() else 0.0
                    for h in range(24)])
    return np.asarray(hod[hours] * level[weekday] if ratio else hod[hours] + level[weekday],
                      dtype=float)


def _mad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


class PatternAnalyzer:
    def __init__(self, policy: PatternPolicy) -> None:
        self.policy = policy

    # -- usage -----------------------------------------------------------------------------
    def analyze_usage_patterns(self, points: Sequence[Point], *, agg: str = "sum"
                               ) -> list[UsagePattern]:
        """Per series: daily / weekly seasonality (autocorrelation at those lags), peak hours
        of day, and bursts against the hour-of-day profile. ``agg``: ``sum`` for counts
        (requests), ``mean`` for gauges."""
        if agg not in ("sum", "mean"):
            raise ValueError(f"agg must be 'sum' or 'mean', not {agg!r}")
        width = self.policy.bucket_seconds
        out = []
        for series, (ts, v) in sorted(_buckets(points, width, agg).items()):
            if len(v) < self.policy.min_history_buckets:
                out.append(UsagePattern(series, len(v), False, f"{len(v)} buckets of {width} s; "
                                        f"{self.policy.min_history_buckets} needed"))
                continue
            out.append(self._pattern(series, ts, v))
        return out

    def _pattern(self, series: str, ts: np.ndarray, v: np.ndarray) -> UsagePattern:
        width, p = self.policy.bucket_seconds, self.policy
        daily_acf = _acf(v, DAY // width) if DAY % width == 0 else None
        weekly_acf = _acf(v, WEEK // width) if WEEK % width == 0 else None
        hours = ((ts % DAY) // 3600).astype(int)
        hourly = np.array([v[hours == h].mean() if (hours == h).any() else np.nan
                           for h in range(24)])
        known = hourly[~np.isnan(hourly)]
        limit = known.mean() + p.peak_sigma * known.std()
        peaks = tuple(h for h in range(24) if not np.isnan(hourly[h]) and hourly[h] > limit)
        base = _seasonal_baseline(ts, v, weekly=False)
        resid = v - base
        mad = _mad(resid) or float(np.std(resid)) or 1.0
        bursts = tuple((float(ts[i]), float(v[i]), float(base[i]))
                       for i in np.where(resid > p.burst_mad * mad)[0])
        return UsagePattern(
            series, len(v), True, daily_acf=daily_acf, weekly_acf=weekly_acf,
            daily=daily_acf is not None and daily_acf >= p.seasonality_min_acf,
            # a daily cycle repeats at the weekly lag too: weekly means the week adds to it
            weekly=weekly_acf is not None and weekly_acf >= p.seasonality_min_acf
            and weekly_acf >= (daily_acf or 0.0) + p.weekly_margin,
            peak_hours=peaks, hourly_mean=tuple(float(x) for x in np.nan_to_num(hourly)),
            bursts=bursts)

    def detect_anomalous_behavior(self, points: Sequence[Point], *, agg: str = "mean"
                                  ) -> list[Anomaly]:
        """Buckets farther than ``anomaly_mad`` robust deviations from the median of the same
        hour of week (two weeks of history or more) or of day; both directions."""
        width = self.policy.bucket_seconds
        out: list[Anomaly] = []
        for series, (ts, v) in sorted(_buckets(points, width, agg).items()):
            if len(v) < self.policy.min_history_buckets:
                continue
            base = _seasonal_baseline(ts, v, weekly=len(v) * width >= 2 * WEEK)
            resid = v - base
            mad = _mad(resid) or float(np.std(resid)) or 1.0
            for i in np.where(np.abs(resid) > self.policy.anomaly_mad * mad)[0]:
                out.append(Anomaly(series, float(ts[i]), float(v[i]), float(base[i]),
                                   float(resid[i] / mad)))
        return out

    # -- next action -----------------------------------------------------------------------
    def predict_next_action(self, sequences: Mapping[str, Sequence[str]],
                            prefix: Sequence[str]) -> NextAction:
        """The most likely action after ``prefix``, from decision sequences keyed by entity
        (each oldest first; the mapping's order is the sequences' age, oldest first).

        A second-order Markov model backing off to first order, then to the most frequent
        action. Its accuracy is measured on the newest ``holdout_fraction`` of the sequences
        (trained on the rest) beside the most-frequent baseline; the prediction itself uses
        all sequences."""
        keys = [k for k, s in sequences.items() if s]
        if not keys:
            return NextAction(None, 0.0, 0, None, None, 0, ())
        cut = max(1, int(round(len(keys) * (1 - self.policy.holdout_fraction))))
        train, test = keys[:cut], keys[cut:]
        acc = base = None
        evaluated = 0
        if test:
            model = _Markov([sequences[k] for k in train])
            hits = base_hits = 0
            for k in test:
                seq = sequences[k]
                for i in range(1, len(seq)):
                    guess, _, _ = model.predict(seq[:i])
                    hits += guess == seq[i]
                    base_hits += model.most_frequent == seq[i]
                    evaluated += 1
            if evaluated:
                acc, base = hits / evaluated, base_hits / evaluated
        full = _Markov([sequences[k] for k in keys])
        action, prob, support = full.predict(list(prefix))
        return NextAction(action, prob, support, acc, base, evaluated,
                          _supporting(sequences, keys, list(prefix), action))

    # -- insights --------------------------------------------------------------------------
    def generate_insights(self, patterns: Sequence[UsagePattern],
                          anomalies: Sequence[Anomaly] = (),
                          next_action: NextAction | None = None) -> list[Insight]:
        """Plain statements, each citing the series (and bucket times) or entities behind it."""
        out: list[Insight] = []
        for p in patterns:
            if not p.stated:
                continue
            if p.daily or p.weekly:
                kinds = " and ".join(k for k, on in (("daily", p.daily), ("weekly", p.weekly))
                                     if on)
                out.append(Insight("seasonality", f"{p.series} follows a {kinds} cycle",
                                   (p.series,), {"daily_acf": p.daily_acf or 0.0,
                                                 "weekly_acf": p.weekly_acf or 0.0}))
            if p.peak_hours:
                hours = ", ".join(f"{h:02d}:00" for h in p.peak_hours)
                out.append(Insight("peak_hours", f"{p.series} peaks at {hours} UTC",
                                   (p.series,), {"hours": len(p.peak_hours)}))
            for ts, value, expected in p.bursts:
                out.append(Insight("burst", f"{p.series} burst at {iso(ts)}: {value:g} against "
                                   f"{expected:.4g} usual for that hour",
                                   (p.series, f"{p.series}@{iso(ts)}"),
                                   {"value": value, "expected": expected}))
        for a in anomalies:
            word = "above" if a.value > a.expected else "below"
            out.append(Insight("anomaly", f"{a.series} at {iso(a.ts)} was {a.value:g}, {word} "
                               f"the usual {a.expected:.4g} ({a.score:+.1f} robust sd)",
                               (a.series, f"{a.series}@{iso(a.ts)}"), {"score": a.score}))
        if next_action is not None and next_action.action is not None \
                and next_action.accuracy is not None and next_action.baseline_accuracy is not None:
            better = next_action.accuracy > next_action.baseline_accuracy
            out.append(Insight(
                "next_action", f"next decision likely {next_action.action!r} "
                f"(p={next_action.probability:.2f}); held-out accuracy "
                f"{next_action.accuracy:.0%} vs {next_action.baseline_accuracy:.0%} for the "
                f"most frequent action ({'better' if better else 'no better'})",
                next_action.cites, {"evaluated": next_action.evaluated,
                                    "accuracy": next_action.accuracy,
                                    "baseline_accuracy": next_action.baseline_accuracy}))
        return out


def _supporting(sequences: Mapping[str, Sequence[str]], keys: list[str], prefix: list[str],
                action: str | None) -> tuple[str, ...]:
    """The entities whose sequences show ``prefix[-1]`` followed by ``action`` (or, without a
    prefix, contain ``action``): the evidence behind a prediction."""
    if action is None:
        return ()
    if not prefix:
        return tuple(k for k in keys if action in sequences[k])
    last = prefix[-1]
    hits = tuple(k for k in keys
                 if any(a == last and b == action
                        for a, b in zip(sequences[k], sequences[k][1:])))
    return hits or tuple(k for k in keys if action in sequences[k])


class _Markov:
    """Counts of next actions after the last two and the last one action."""

    def __init__(self, sequences: Sequence[Sequence[str]]) -> None:
        self.second: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.first: dict[str, Counter[str]] = defaultdict(Counter)
        self.freq: Counter[str] = Counter()
        for seq in sequences:
            self.freq.update(seq)
            for i in range(1, len(seq)):
                self.first[seq[i - 1]][seq[i]] += 1
                if i >= 2:
                    self.second[(seq[i - 2], seq[i - 1])][seq[i]] += 1
        # ties broken by name, so the model is deterministic
        self.most_frequent = min(self.freq, key=lambda a: (-self.freq[a], a)) if self.freq else None

    def predict(self, prefix: Sequence[str]) -> tuple[str | None, float, int]:
        pair = (prefix[-2], prefix[-1]) if len(prefix) >= 2 else None
        for counts in (self.second.get(pair) if pair is not None else None,
                       self.first.get(prefix[-1]) if prefix else None):
            if counts:
                n = sum(counts.values())
                best = min(counts, key=lambda a: (-counts[a], a))
                return best, counts[best] / n, n
        if self.most_frequent is None:
            return None, 0.0, 0
        n = sum(self.freq.values())
        return self.most_frequent, self.freq[self.most_frequent] / n, n
