"""The judge: a candidate version's samples against the baseline's, by fixed statistical gates.

Pure (no I/O, no clock): samples come in, a :class:`Comparison` comes out. Gates (numbers from
``policies/evolution.yaml``, section ``evolution.judge``):

* fewer than ``floor_samples`` per version: ``INSUFFICIENT``, no verdict at all;
* latency: one-sided Mann-Whitney U (candidate slower); fails at p < ``latency_p_value`` and
  median ratio ≥ ``latency_ratio_fail``, once both versions have ``min_samples``;
* immediate: median ratio ≥ ``latency_ratio_immediate`` fails from ``immediate_min_samples``
  on, but only at the stricter p < ``immediate_p_value`` and, for paired rounds, only when it
  persists: in each of the last ``immediate_windows`` consecutive windows of
  ``immediate_min_rounds`` rounds the candidate is slower in every round and by ≥
  ``latency_ratio_fail`` at the window's median (a ratio of medians of a handful of samples
  is noise on a loaded host: ×2 at 5 samples rolled identical versions back, and a freshly
  started candidate's first rounds on a CPU-loaded host — one burst — measured ×2 and rolled
  good candidates back when one window sufficed);
* rounds: samples taken at the same moment are not independent (one scheduling hiccup slows
  a whole burst of probes), so Mann-Whitney over-states the evidence. When the samples come
  from paired probe rounds (``rounds``: per round, the candidate's median latency over the
  baseline's, both probed at once), latency fails only when the candidate is also slower
  across rounds: ≥ ``min_rounds`` rounds and a one-sided Wilcoxon signed-rank test of their
  log ratios at p < ``round_p_value``; a pass needs ``min_rounds`` too. Unpaired samples
  (``rounds=()``) skip this gate;
* errors: one-sided Fisher's exact test (candidate errs more) on (errors, successes) of
  both; fails at p < ``error_p_value``;
* score (0–100; 50 latency + 50 errors, partial credit as below): < ``score_rollback`` rolls
  back (once both versions have ``min_samples``), ≥ ``score_advance`` advances, between
  waits. A pass needs ≥ ``min_samples`` per version; below that a passing score is
  ``INSUFFICIENT``.

Partial credit: latency 50 − 5 × clamp((ratio − 1)/(fail − 1)) when significant (both tests
above) but below the fail ratio — a slowdown the policy tolerates: two processes of the same
code measured 0–13 % apart at the median on this 2-core host, and a stricter credit made such
a candidate wait until its deadline rolled it back — 25 when slower by the fail ratio over
all samples but not across rounds (waits), 0 when the gate fails, else 50;
errors 50 × p (the one-sided Fisher p) when the candidate's error rate exceeds the
baseline's, else 50 — so a candidate erring where the baseline never does loses points
before it is significant.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from enum import Enum

from scipy.stats import fisher_exact, mannwhitneyu, wilcoxon

from autonomous.resources.policy.evolution import JudgePolicy

__all__ = ["Comparison", "MetricsComparator", "Samples", "Verdict", "compare"]


class Verdict(str, Enum):
    ADVANCE = "advance"
    WAIT = "wait"
    ROLLBACK = "rollback"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class Samples:
    """One version's observations in one phase: latencies (ms) of answered requests, and
    request / error counts (errors: 5xx or connection failures)."""
    latencies_ms: tuple[float, ...]
    requests: int
    errors: int

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValueError("need 0 ≤ errors ≤ requests")

    @classmethod
    def of(cls, latencies_ms: list[float], errors: int = 0) -> Samples:
        return cls(tuple(latencies_ms), len(latencies_ms) + errors, errors)


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    score: float | None
    reason: str
    baseline_n: int
    candidate_n: int
    median_ratio: float | None = None
    latency_p: float | None = None
    error_p: float | None = None
    baseline_error_rate: float | None = None
    candidate_error_rate: float | None = None
    rounds: int = 0
    round_p: float | None = None


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def _across_rounds(rounds: tuple[float, ...], policy: JudgePolicy) -> tuple[bool, float | None]:
    """(candidate slower across paired rounds, Wilcoxon p). No rounds: unpaired, passes."""
    if not rounds:
        return True, None
    if len(rounds) < policy.min_rounds:
        return False, None
    logs = [math.log(max(r, 1e-9)) for r in rounds]
    if not any(logs):
        return False, 1.0
    p = float(wilcoxon(logs, alternative="greater").pvalue)
    return p < policy.round_p_value, p


def _persists(rounds: tuple[float, ...], policy: JudgePolicy) -> bool:
    """The last ``immediate_windows`` consecutive windows of ``immediate_min_rounds`` rounds:
    in each, the candidate slower in every round and by ≥ ``latency_ratio_fail`` at the
    window's median round."""
    k, w = policy.immediate_min_rounds, policy.immediate_windows
    if len(rounds) < k * w:
        return False
    tail = rounds[len(rounds) - k * w:]
    windows = [tail[i * k:(i + 1) * k] for i in range(w)]
    return all(all(r > 1 for r in win) and statistics.median(win) >= policy.latency_ratio_fail
               for win in windows)


def compare(baseline: Samples, candidate: Samples, policy: JudgePolicy,
            rounds: tuple[float, ...] = ()) -> Comparison:
    """``rounds``: per paired probe round, candidate median latency / baseline median (see the
    module docstring); empty when the samples were not taken in paired rounds."""
    nb, nc = baseline.requests, candidate.requests
    if min(nb, nc) >= policy.floor_samples and not candidate.latencies_ms \
            and baseline.latencies_ms:
        # the candidate answered nothing well: judge it on errors alone
        p = float(fisher_exact([[candidate.errors, 0], [baseline.errors, nb - baseline.errors]],
                               alternative="greater").pvalue)
        if p < policy.error_p_value:
            return Comparison(Verdict.ROLLBACK, 0.0, f"errors {candidate.errors / nc:.1%} vs "
                              f"{baseline.errors / nb:.1%} (Fisher p={p:.2g})", nb, nc,
                              None, None, p, baseline.errors / nb, candidate.errors / nc,
                              len(rounds))
    if min(nb, nc) < policy.floor_samples or min(len(baseline.latencies_ms),
                                                 len(candidate.latencies_ms)) == 0:
        return Comparison(Verdict.INSUFFICIENT, None,
                          f"not enough samples: baseline {nb}, candidate {nc} "
                          f"(floor {policy.floor_samples})", nb, nc, rounds=len(rounds))
    mb = statistics.median(baseline.latencies_ms)
    mc = statistics.median(candidate.latencies_ms)
    ratio = mc / mb if mb > 0 else (1.0 if mc == 0 else float("inf"))
    if ratio == 1.0 and baseline.latencies_ms == candidate.latencies_ms:
        lat_p = 1.0
    else:
        lat_p = float(mannwhitneyu(candidate.latencies_ms, baseline.latencies_ms,
                                   alternative="greater").pvalue)
    table = [[candidate.errors, nc - candidate.errors], [baseline.errors, nb - baseline.errors]]
    err_p = float(fisher_exact(table, alternative="greater").pvalue)
    rb, rc = baseline.errors / nb, candidate.errors / nc
    slower_in_rounds, round_p = _across_rounds(rounds, policy)
    n = min(nb, nc)
    # a pass (and a latency or score rollback) needs min_samples, and min_rounds when paired
    enough = n >= policy.min_samples and (not rounds or len(rounds) >= policy.min_rounds)

    def mk(verdict: Verdict, score: float, reason: str) -> Comparison:
        return Comparison(verdict, score, reason, nb, nc, ratio, lat_p, err_p, rb, rc,
                          len(rounds), round_p)

    rounds_why = f", slower in rounds (Wilcoxon p={round_p:.2g})" if round_p is not None else ""
    # immediate: far slower, and it persists: the last immediate_windows consecutive windows
    # of rounds each slower in every round (a start-up or load burst is one window)
    persists = not rounds or _persists(rounds, policy)
    if ratio >= policy.latency_ratio_immediate and n >= policy.immediate_min_samples \
            and lat_p < policy.immediate_p_value and persists:
        k = policy.immediate_min_rounds * policy.immediate_windows
        where = (f", slower in each of the last {k} rounds ({policy.immediate_windows} "
                 "consecutive windows)" if rounds else "")
        return mk(Verdict.ROLLBACK, 0.0, f"median latency ×{ratio:.2f} ≥ "
                  f"×{policy.latency_ratio_immediate} (immediate; Mann-Whitney p={lat_p:.2g}"
                  f"{where})")
    lat_mw = lat_p < policy.latency_p_value
    lat_sig = lat_mw and slower_in_rounds
    lat_fail = lat_sig and ratio >= policy.latency_ratio_fail
    if lat_fail:
        lat_pts = 0.0
    elif lat_mw and ratio >= policy.latency_ratio_fail:
        lat_pts = 25.0  # slower over all samples, not (yet) across rounds: waits
    elif lat_sig:
        # significant but below the fail ratio: 45..50 points (tolerated by policy: it
        # blocks a pass only together with other doubts, and never rolls back alone)
        lat_pts = 50.0 - 5.0 * _clamp((ratio - 1) / (policy.latency_ratio_fail - 1))
    else:
        lat_pts = 50.0
    err_worse = rc > rb
    err_sig = err_worse and err_p < policy.error_p_value
    err_pts = 0.0 if err_sig else 50.0 * (err_p if err_worse else 1.0)
    score = round(lat_pts + err_pts, 2)
    reasons = []
    if lat_fail and enough:
        reasons.append(f"latency ×{ratio:.2f} (Mann-Whitney p={lat_p:.2g}{rounds_why})")
    if err_sig:
        reasons.append(f"errors {rc:.1%} vs {rb:.1%} (Fisher p={err_p:.2g})")
    if reasons:
        return mk(Verdict.ROLLBACK, score, "; ".join(reasons))
    if score < policy.score_rollback and enough:
        return mk(Verdict.ROLLBACK, score, f"score {score} < {policy.score_rollback}")
    if score >= policy.score_advance:
        if not enough:
            return mk(Verdict.INSUFFICIENT, score,
                      f"not enough samples to pass: baseline {nb}, candidate {nc} "
                      f"(need {policy.min_samples}), {len(rounds)} rounds"
                      f"{f' (need {policy.min_rounds})' if rounds else ''}")
        return mk(Verdict.ADVANCE, score, f"score {score} ≥ {policy.score_advance}")
    if not enough:
        return mk(Verdict.INSUFFICIENT, score, f"score {score} < {policy.score_advance} on "
                  f"baseline {nb}, candidate {nc} samples (need {policy.min_samples} to judge)")
    return mk(Verdict.WAIT, score, f"score {score} between {policy.score_rollback} "
              f"and {policy.score_advance}")


class MetricsComparator:
    """Baseline and post-update samples of one rollout phase, judged by :func:`compare`."""

    def __init__(self, policy: JudgePolicy) -> None:
        self.policy = policy
        self.baseline: Samples | None = None
        self.candidate: Samples | None = None
        self.rounds: tuple[float, ...] = ()

    def capture_baseline(self, samples: Samples) -> None:
        self.baseline = samples

    def capture_post_update(self, samples: Samples, rounds: tuple[float, ...] = ()) -> None:
        """``rounds``: per paired probe round, candidate / baseline median latency."""
        self.candidate = samples
        self.rounds = rounds

    def compare_metrics(self) -> Comparison:
        if self.baseline is None or self.candidate is None:
            raise ValueError("capture_baseline and capture_post_update first")
        return compare(self.baseline, self.candidate, self.policy, self.rounds)

    def should_rollback(self) -> tuple[bool, str]:
        c = self.compare_metrics()
        return c.verdict is Verdict.ROLLBACK, c.reason

    def generate_comparison_chart(self, width: int = 480, height: int = 200) -> str:
        """SVG: latency percentiles (p50, p90, p99) of both versions as bars, and the verdict."""
        from autonomous.evolution.chart import comparison_svg

        c = self.compare_metrics()
        assert self.baseline is not None and self.candidate is not None
        return comparison_svg(self.baseline.latencies_ms, self.candidate.latencies_ms,
                              f"{c.verdict.value}: {c.reason}", width, height)
