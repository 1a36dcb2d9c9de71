"""The streaming anomaly detector: one per metric, each score from past samples only.

For every new value ``x``:

1. **Surprise.** The change ``d = x - previous`` is scored against the last ``window``
   changes: ``z_d = (d - median) / (1.4826 · MAD)``; the surprise is ``log(1 + |z_d|)``. A
   step, a spike or a sudden change of rhythm surprises; a metric that stays at its new level
   stops surprising at once (changes scored about 50 on NAB against 41-44 for the level).
2. **Anomaly likelihood** (after Numenta's post-processing): the mean surprise of the last
   ``short_window`` samples is compared with the mean and standard deviation of the surprises
   of the ``likelihood_window`` samples before; the score is the normal CDF of that
   standardised difference, in [0, 1]. A change that leaves the level within ``change_sigma``
   robust σ of the rolling median scores 0.
3. **Records.** A value above the max or below the min of the last ``record_window`` values
   (once ``window`` values are in) scores 1 outright, like the "spatial anomaly" of Numenta's
   NAB detector: a level never seen in hours is news even when its change is not.
4. **One alarm per event.** A score at or above ``threshold`` is a detection; the next
   ``suppress`` samples score 0, unless the sample is a record whose ``|z|`` reaches
   ``escalation`` times that of the detection. The suppression ends early once ``quiet``
   samples in a row sit within ``change_sigma`` of the median (the event is over: the next
   one alarms); it may be held, for up to ``hold`` more samples, while the level stays
   ``change_sigma`` off (policy: 0, no hold).
5. **Season.** A candidate (score at or above ``threshold``) that falls on the beat of
   earlier ones, onsets at ``t - P`` … ``t - season_repeats·P`` within
   ``season_tolerance · P`` for a period ``P`` in ``season_periods``, does not alarm: a
   spike every day at the same hour (a backup, a batch job) is routine
   (``stream_windows.Recurrence``).
6. **Second opinion** (policy ``opinion``, default ``none``): a candidate alarms only when
   the opinion, updated on every scored row from past rows and ``x``, backs it
   (``stream_opinion``: CUSUM of ``z``, windowed Gaussian tail, seasonal residual, mean
   shift). A vetoed candidate starts no suppression.

Record on NAB (``bench/nab_eval.py``: 37 files, four categories, one scorer for ours and for
the published result files; ours scored on its own detections, theirs at their best corpus
threshold; LOCO = leave-one-category-out, parameters chosen on three categories, scored on
the fourth; standard profile; HTM's LOCO 70.4 = 73.4 / 70.2 / 55.5 / 82.4, ARTime's 70.4 =
69.5 / 61.9 / 63.1 / 87.2 for realAWSCloudwatch / realAdExchange / realKnownCause /
realTraffic held out):

- **Markov raw score (stop 30), not adopted, code not merged** (a scratch screen, planned in
  writing before it ran, two variants only): an HTM-like "prediction error" — an order-1
  Markov chain over level bins (robust z in 0.5 σ bins, ±8; counts accumulated, Laplace 0.1;
  raw = 1 - P(bin | previous bin)) under NAB's likelihood (10-row mean against the mean / std
  of those means over 800 rows), scored like the published detectors (best corpus threshold;
  LOCO threshold chosen on three categories). Standard: alone 3.3 overall (the best threshold
  is 1.0, i.e. nearly nothing alarms: 0-2 % of rows score ≥ 0.999, and those fall outside the
  windows more than inside; why was not measured), LOCO -7.0; with the records rule 52.0
  overall, LOCO 51.1 (60.2 / 54.1 / 20.9 / 69.3) beside HTM's 70.4; 255 µs per row in Python.
  A first-order chain over value bins does not carry what HTM's score does: dropped.
- **Normalised surprise (stop 27), not adopted, code not merged** (branch wt/nab4): the
  surprise ÷ the median / 90 % quantile of the raw surprises of the past 200 / 800 rows,
  floored at 0.1, before the likelihood (the branch's ``bench/nab_eval.py --norms``: 5 options
  × 540 grid points, planned in an empty commit before any result, opinions left out).
  Nested LOCO, plain rules (the clean figure) / with smoothed: standard **67.9** / 72.7,
  low-FP 56.6 / 57.4, low-FN 72.0 / 76.0, all equal to without: no fold picks a norm setting;
  the defaults (plain or smoothed) keep ``none``. Policy point, all 37 files (standard, low-FP;
  AWS): median 200 / 800 67.2 / 69.3, 55.5 / 57.6; q90 200 / 800 67.1 / 68.1, 54.0 / 57.6
  (AWS 57.5-62.8 against 65.6). Likely why (not measured): the likelihood already
  standardises the surprise by its own history, so a slow divisor cancels and a fast one
  adds noise. 14-18 µs CPU per row (none: 12-13).
- **Blend with a level likelihood (stop 26), not adopted, code not merged** (branch wt/nab3):
  the change likelihood averaged (``mean``) or maxed (``max``) with the same CDF on the level
  surprise ``log(1 + |z|)``, planned before any result, each option crossed with every grid
  point (+1080 settings) and offered to the nested LOCO: no fold picks one (standard 72.72,
  low-FP 57.36, low-FN 76.02, all equal to without); policy point on all 37 files: 68.29 /
  68.38 against 71.30 (low-FP 59.10 / 55.40 against 60.61): realAWSCloudwatch -6 to -7 (the
  level likelihood fires on near-flat series' repeated spikes too). Exact figures of the
  policy in force: overall 71.30 against HTM 71.27 and ARTime 72.35; low-FP 60.61 (HTM
  65.78), low-FN 76.97 (HTM 75.22).
- **Second opinions (stop 24), not adopted.** Four families (``stream_opinion``: CUSUM of
  ``z``, k 5 / 20 × drift 0.5 / 1; windowed Gaussian tail, k 2 / 3 / 4 / 6; seasonal
  residual, k 3 / 6 × period 24 / 288; mean shift, k 4 / 8 × 6 / 24 recent rows), fixed
  before any run, each option crossed with every grid point (9180 settings, ``nab_replay``),
  all offered at once to the nested LOCO beside the detector alone. Standard: nested
  **72.7** with opinions = 72.7 alone (65.6 / 72.7 / 73.6 / 78.9: every fold's inner LOCO
  picks a setting with opinion ``none``); plain rules 67.9 = 67.9. Low-FP: 55.1 with against
  57.4 alone (the folds holding realAWSCloudwatch and realKnownCause out picked season (3,
  288) and tail (2): 40.9 and 49.7 against 45.3 and 61.9; realTraffic out picked season:
  67.1 against 59.3); plain 56.3 / 56.6. Low-FN: 76.3 / 76.0 (plain 72.0 / 72.0). The
  defaults by the same procedure on all 37 files are the policy in force (opinion
  ``none``). With 17 times the candidates a choice on three categories overfits: the LOCO
  of the opinion procedures is lower than the same rule's alone (standard, quiet
  doubling, pooled smoothed: 67.8 against 72.7), though the in-sample ceiling rises
  (66.9 / 75.1 / 74.5 / 88.7 against 66.5 / 72.7 / 74.5 / 84.4): an opinion lifts a
  category it is tuned on and does not transfer. Per family (diagnostic, nested with that
  family alone offered, standard / low-FP): cusum 72.7 / 56.0, tail 72.7 / 54.3, season
  72.7 / 58.2, shift 72.7 / 57.4. 15-25 µs CPU per row per metric with any opinion.
- **Nested LOCO (stop 23): 72.7** (standard; HTM 70.4, ARTime 70.4 on the same folds) =
  65.6 / 72.7 / 73.6 / 78.9; low-FP **57.4** (HTM 65.0, ARTime 62.9) = 45.3 / 62.9 / 61.9 /
  59.3, still below HTM; low-FN 76.0 (HTM 74.3, ARTime 75.5). For each held-out category
  the procedure (candidate grid ``no quiet`` or ``quiet doubling`` 0 / 15 / 30 / 60 / 120;
  rule pooled / maximin / mean; plain or *smoothed*: each setting judged by the mean of its
  own and its one-step grid neighbours' scores) is chosen by an inner LOCO on the other
  three (``nab_folds.nested``), so no choice sees the held-out category. Every standard fold
  picks a smoothed rule, and the setting each picks is the policy's. Said plainly: the
  smoothed rules were added after the first nested figure, **67.9** without them (61.6 /
  69.2 / 73.6 / 67.1, below the bar: the fold holding realTraffic out picked ``no quiet,
  pooled``, 67.1, and realAdExchange out suppress 240 / quiet 15, 69.2), as the one idea
  tried at that level, not a search; with them offered every fold's choice moved to the
  centre of the grid's good region, across all three rules (LOCO of the smoothed
  procedures on ``quiet doubling``: pooled 72.7, maximin 72.0, mean 72.1; plain 68.8 /
  68.4 / 70.4). Offering also stop 22's ``quiet 0/30/60`` grid (values first picked on all
  37 files): 71.7 (plain 68.8). Stop 22's procedure (that grid, plain mean rule, chosen
  after seeing its LOCO) gives 71.3; it is not a held-out figure. The defaults, by the same
  procedure on all 37 files (the clean procedure with the best LOCO over the four, ``quiet
  doubling, pooled smoothed``, LOCO 72.7, applied to all of them), are the policy in force:
  overall 71.3 (in-sample; HTM 71.3, ARTime 72.4). 12-37 µs per row per metric (the host's
  load varies). Tried in stop 23 to lift realAWSCloudwatch and the low-FP profile (its
  false alarms, counted on all 37 files: likelihood-channel detections 80 outside windows
  / 33 inside, records 74 / 73; in realAWSCloudwatch the false alarms sit in near-flat
  series with repeated spikes, |z| in
  the hundreds against a floored MAD), none kept: records only (``threshold`` 1.0, offered
  to the nested search as a grid value: never chosen in any fold; at the policy's other
  values overall 58.4, realAWSCloudwatch 60.4); the scale floored at 0.05 / 0.1 / 0.3 × the
  window's standard deviation (policy point, all files: 70.8 / 69.1 / 67.6, AWS 64.5 /
  62.8 / 61.2, low-FP 59.5 / 57.1 / 54.8); an empirical (rank) likelihood, the share of
  the surprise history below the current one (60.1, threshold 0.999: 60.4; AWS 60.5 /
  59.4); an excursion gate (the likelihood channel alarms only once the current run of
  samples off the median outlasts every run that ended in the last ``record_window``; in
  ec2_cpu fe7f93 the false alarms are 3-row bursts, the labelled anomalies last longer):
  58.6 (AWS 60.1, low-FP 52.5), about records alone, since after a level shift the lagging
  median makes long runs routine. The last three were screened at the policy point on all
  37 files, lost everywhere and were not offered to the nested search. What selection
  cannot fix: the best any of the 540
  settings scores on a category, in-sample (a ceiling, not a figure), is 66.5 / 72.7 / 74.5
  / 84.4 standard and 55.7 / 65.8 / 61.9 / 74.6 low-FP; HTM's 73.4 (68.7 low-FP) on
  realAWSCloudwatch is out of this detector family's reach: it needs about half its false
  alarms there (66 after the probation against HTM's 27, each finding 25 of the 30 windows).
- **Policy (stop 22, kept in stop 23): ``quiet`` 30, ``change_sigma`` 1.5, mean rule**
  (best mean of the training categories' normalised scores). Grid 324 settings (the 108
  below × ``quiet`` 0 / 30 / 60). LOCO standard **71.3** = 61.6 / 72.7 / 71.8 / 78.9 beside
  HTM 70.4 and ARTime 70.4; overall **71.30** (HTM 71.27, ARTime 72.35) = 65.6 / 72.7 /
  73.6 / 78.9; low-FP 60.6 (HTM 65.8), low-FN 77.0 (HTM 75.2); LOCO low-FP 56.6 (HTM 65.0),
  low-FN 77.2 (HTM 74.3). 12-21 µs per row. Bar met on the standard profile, narrowly and
  not on every category: realAWSCloudwatch held out is 61.6 against HTM's 73.4 (that fold
  picks season_repeats 0 and likelihood_window 800), and the low-FP profile stays below
  HTM. Caveats, said plainly: the ``quiet`` values 30 / 60 came from an earlier run on all 37
  files, and the rule was chosen after seeing all four rules' LOCO on this grid: maximin
  68.4, pooled 68.8, median 69.8, mean 71.3 (on the old 108-setting grid: maximin 68.9, mean
  66.1, median 67.9, i.e. the mean rule alone does not help; it helps together with
  ``quiet``, which only the mean rule picks, since it lifts realTraffic 67 → 79 at a small
  cost elsewhere). Sensitivity (measured after the choice, not used for it; overall with the
  policy's other values): ``quiet`` 15 / 20 / 30 / 45 / 60 / 90 → 70.04 / 70.73 / 71.30 /
  70.79 / 70.92 / 71.26, so the overall bar (71.3) is met at 30 only, by 0.001. Held-out data
  the project has not seen is the real test.

- Before (maximin rule, no ``quiet``): 24-file era policy (threshold 0.9997, suppress 120
  with hold, change_sigma 2, likelihood_window 800): 67.8 overall, LOCO 68.1 (pooled rule
  65.7) beside HTM 71.3 / LOCO 70.4 and ARTime 72.4 / 70.4.
- **No hold** (``hold`` 0): the held suppression hid the next window (ec2_cpu 24ae8d: a
  detection at 3547 held past 3677, where the second window starts): LOCO 68.1 → 68.9,
  overall 68.1 with the maximin pick (likelihood_window 2000).
- **Season check** (``season_repeats`` 3, tolerance 3 %, periods 24-2100 rows: up to a week
  of 5-minute samples), a grid field of the LOCO search (0 or 3): realAWSCloudwatch 63.8 →
  66.5 with the same pick (daily spikes in ec2_cpu 24ae8d / 53ea38 / c6585a no longer
  alarm), elsewhere unchanged; overall **69.2** (66.5 / 72.7 / 72.3 / 67.1), low-FP 58.9,
  low-FN 74.7. LOCO standard **68.9** (maximin; pooled 67.8) beside HTM 70.4: the fold that
  holds realAWSCloudwatch out ties 0 and 3 on the other three and keeps the plainer 0 (63.6);
  with 3 it would be 69.6. Still below the bar (LOCO ≥ HTM, ≥ 71.3 overall). Tolerance 1 % /
  6 % on all 37 files: 69.0 / 65.9, 2 repeats: 60.4-65.8 (likelihood_window 800); not searched.
- Tried (all 37 files unless said): ending the suppression after 30 / 60 quiet samples
  (now ``quiet``): with change_sigma 2: 69.8 / 70.0, LOCO 70.1 / 71.0 when fixed, 68.9 when
  the maximin search may choose it (folds holding realTraffic out never pick it); a
  warm-up of 300 samples before any alarm: 66.6; a
  familiarity veto (drop a candidate whose ``|z|`` or ``|z_d|`` was exceeded 1-10 times in
  the last 1000 / 3000 rows): 34-63, it drops true windows (NAB anomalies look like earlier
  spikes); a tail-z threshold instead of the CDF (3.4-8): 58-69; no records: 57.6;
  escalation on any |z| (3 / 5 / 10 × the detection's): 68.6-69.7. A second likelihood on the
  mean surprise of the last 6 / 24 samples (σ / √k), OR-ed in at 1 - 1e-4 … 1 - 1e-9: 63.0-69.4
  (+6 on realTraffic, -2 on realAWSCloudwatch, the trade every suppression change makes
  too). Earlier: an OR-ed HTM-style likelihood on exponential-smoothing error (68.4-68.5,
  never picked), a
  sustained-shift channel (67.4-68.5), ``window`` 150 / 600, ``record_window`` 2000 / 8000,
  ``short_window`` 3, a record margin of 2-20 % of the range (all below).
- **LOCO-trained candidate classifier** (fourth round, not kept): the policy detector's 291
  detections (242 after the probation: 94 inside a window, 148 outside) were given causal
  features (log |z|, record, detections in the last 2000 rows, log rows since the last one,
  |x - median₃₀₀| / range of the last 4000 rows, rank of |Δx| among the last 1000, log of the
  12-row σ over the 300-row σ); per fold a balanced logistic regression was fitted on the three
  training categories and its veto cut (0 … 0.5) chosen there by maximin, then applied to the
  held-out one. Single-feature AUC on all files 0.40-0.65. Scored by dropping the vetoed
  detections from the fixed-policy run, without re-running the suppression. Against that
  harness's baseline (policy parameters, no search: LOCO 69.7): all seven features 65.0
  (realKnownCause 72.3 → 56.1; held-out AUC 0.49 there, 0.63-0.89 elsewhere); record + range
  ratio 69.7 (cut 0 chosen in every fold, i.e. no veto); range ratio alone 70.2
  (realAWSCloudwatch 66.5 → 67.5, realTraffic 67.1 → 68.2, others unchanged); range ratio +
  |Δx| rank + σ ratio 69.7. None reaches HTM's LOCO 70.4. It was not built into the detector
  or scored overall, so no policy change came of it. Feature weights learned on three
  categories do not transfer to the fourth: the candidates that are false alarms look
  different in each category.
  A hard veto on the range ratio alone (drop a detection whose |x - median₃₀₀| is below
  q × the 4000-row range; q in 0 … 0.3 chosen by maximin in the fold), same harness: overall
  69.2 / 69.9 / 70.5 / 67.5 / 66.0 / 63.1 / 60.5 at q = 0 / 0.02 / 0.05 / 0.1 / 0.15 / 0.2 /
  0.3 (all 37 files, in-sample). LOCO 67.8: the fold holding realKnownCause out picks 0.1
  and drops 72.3 → 62.8. Not kept.
- Where the points go (policy now): 68 of 77 windows found, mean reward 0.86, 154 false
  alarms after the probation. Before (change_sigma 2, no ``quiet``): 66 of 77 windows found
  (HTM 64), mean reward 0.85 per found window (HTM 0.85), 148 false alarms after the
  probation (HTM 80 at its best threshold; no season check, likelihood_window 800: 167). Of
  the 11 missed windows then, 2 had a candidate that a suppression hid (TravelTime_387 at
  428, speed_7578 at 959); 9 had none at all.
- Not tried: river (not installed; its HalfSpaceTrees runs in Python well above 50 µs per
  row), stumpy / ruptures (batch methods: a causal score needs a re-run per row), CAD-OSE
  (its published form scales bins by the file's min / max, which a stream does not know).

The same class runs in the product (per metric, parameters from policy
``health.anomaly.stream``) and in ``bench/nab_eval.py`` on the NAB corpus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from autonomous.health_monitor.stream_opinion import make_opinion
from autonomous.health_monitor.stream_windows import Extremes, Recurrence, Ring, robust_z

__all__ = ["Observation", "StreamParams", "StreamResult", "StreamingDetector"]


@dataclass(frozen=True)
class StreamParams:
    """Detector parameters (policy ``health.anomaly.stream``)."""

    window: int
    min_samples: int
    short_window: int
    likelihood_window: int
    threshold: float
    suppress: int
    record_window: int
    escalation: float
    change_sigma: float
    hold: int = 0
    season_repeats: int = 0
    season_tolerance: float = 0.03
    season_periods: tuple[int, int] = (24, 2100)
    quiet: int = 0
    opinion: str = "none"  # second opinion on candidates (``stream_opinion.FAMILIES``)
    opinion_k: float = 0.0
    opinion_arg: float = 0.0

    @classmethod
    def from_policy(cls, p: dict[str, Any]) -> StreamParams:
        lo, hi = p["season_periods"]
        return cls(int(p["window"]), int(p["min_samples"]), int(p["short_window"]),
                   int(p["likelihood_window"]), float(p["threshold"]), int(p["suppress"]),
                   int(p["record_window"]), float(p["escalation"]), float(p["change_sigma"]),
                   int(p["hold"]), int(p["season_repeats"]), float(p["season_tolerance"]),
                   (int(lo), int(hi)), int(p.get("quiet", 0)), str(p.get("opinion", "none")),
                   float(p.get("opinion_k", 0.0)), float(p.get("opinion_arg", 0.0)))


@dataclass(frozen=True)
class StreamResult:
    """One update: likelihood ``score`` in [0, 1], ``detected``, signed robust ``z``."""

    score: float
    detected: bool
    z: float
    baseline: float | None


@dataclass(frozen=True)
class Observation:
    """A row scored before any suppression: ``score`` (1 for a record, 0 within
    ``change_sigma``), the level's ``z``, ``record``, and whether the opinion ``agrees``."""

    score: float
    z: float
    baseline: float | None
    record: bool
    agrees: bool


class StreamingDetector:
    """Change surprise → anomaly likelihood → detection with suppression.

    Each result also carries ``z``, the level's robust deviation from the rolling median of the
    last ``window`` values: the health monitor uses it for severity and to tell when an event
    is over (the baseline adapts, so a metric stuck at a new level stops alarming).
    """

    def __init__(self, params: StreamParams) -> None:
        self.p = params
        self.values = Ring(params.window, keep_sorted=True)
        self.changes = Ring(params.window, keep_sorted=True)
        self.history = Ring(params.likelihood_window)  # older surprises
        self.recent: deque[float] = deque()  # the last ``short_window`` surprises
        self.extremes = Extremes(params.record_window)
        self.since_detection = params.suppress + 1
        self.detected_z = 0.0  # |z| of the last detection (a record escalates past it)
        self.extended = 0  # samples the current suppression has been held past ``suppress``
        self.calm = 0  # consecutive samples within ``change_sigma`` since the last detection
        self.seen = 0
        self.recurrence = Recurrence(params.season_repeats, params.season_tolerance,
                                      params.season_periods)
        self.opinion = make_opinion(params.opinion, params.opinion_k, params.opinion_arg,
                                    params.window, params.min_samples)

    def observe(self, x: float) -> Observation | StreamResult:
        """Score ``x`` against the past and add it to the history (no suppression yet): an
        ``Observation``, or the final ``StreamResult`` while the windows are filling."""
        z, base = robust_z(self.values, x, self.p.min_samples)
        d = x - self.values.last() if len(self.values) else None
        zd = None if d is None else robust_z(self.changes, d, self.p.min_samples)[0]
        record = self.extremes.n >= self.p.window and self.extremes.is_record(x)
        self.extremes.append(x)
        self.values.append(x)
        if d is not None:
            self.changes.append(d)
        self.seen += 1
        if z is None or zd is None:
            return StreamResult(0.0, False, z or 0.0, base)
        agrees = self.opinion.update(x, z)
        self.recent.append(math.log1p(abs(zd)))
        if len(self.recent) > self.p.short_window:
            self.history.append(self.recent.popleft())
        if record:
            score = 1.0
        elif abs(z) < self.p.change_sigma:  # a change that leaves the level near its median
            score = 0.0
        else:
            score = self._likelihood()
        return Observation(score, z, base, record, agrees)

    def update(self, x: float) -> StreamResult:
        """Score ``x`` against the past, then add it to the history."""
        o = self.observe(x)
        if isinstance(o, StreamResult):
            return o
        score, z, base, record = o.score, o.z, o.baseline, o.record
        recurs = False
        if self.p.season_repeats and score >= self.p.threshold:
            recurs = self.recurrence.recurs(self.seen)
            self.recurrence.add(self.seen)
        self.since_detection += 1
        self.calm = self.calm + 1 if abs(z) < self.p.change_sigma else 0
        if self.p.quiet and self.calm >= self.p.quiet and self.since_detection <= self.p.suppress:
            self.since_detection = self.p.suppress + 1  # the event is over: end the suppression
        if (self.since_detection == self.p.suppress and abs(z) >= self.p.change_sigma
                and self.extended < self.p.hold):  # the event is not over: hold
            self.since_detection -= 1
            self.extended += 1
        if (self.since_detection <= self.p.suppress
                and not (record and abs(z) >= self.p.escalation * self.detected_z)):
            return StreamResult(0.0, False, z, base)
        detected = score >= self.p.threshold and not recurs and o.agrees
        if detected:
            self.since_detection = 0
            self.extended = 0
            self.calm = 0
            self.detected_z = max(abs(z), 1.0)  # in robust σ: at least one
        return StreamResult(score, detected, z, base)

    def _likelihood(self) -> float:
        if len(self.history) < 10:
            return 0.0
        mean, sd = self.history.mean_std()
        recent = sum(self.recent) / len(self.recent)
        return 0.5 * math.erfc(-(recent - mean) / max(sd, 1e-6) / math.sqrt(2))

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain-data state (for the persisted model)."""
        return {"values": self.values.ordered(), "changes": self.changes.ordered(),
                "history": self.history.ordered(), "recent": list(self.recent),
                "since_detection": self.since_detection, "seen": self.seen,
                "detected_z": self.detected_z, "extended": self.extended, "calm": self.calm,
                "extremes": self.extremes.state(),
                "onsets": list(self.recurrence.onsets), "last_onset": self.recurrence.last,
                "opinion": self.opinion.state()}

    @classmethod
    def from_state(cls, params: StreamParams, state: dict[str, Any]) -> StreamingDetector:
        d = cls(params)
        for ring, key in ((d.values, "values"), (d.changes, "changes"), (d.history, "history")):
            for x in state[key][-len(ring.buf):]:
                ring.append(x)
        d.recent.extend(state["recent"][-params.short_window:])
        d.since_detection = int(state["since_detection"])
        d.seen = int(state["seen"])
        d.detected_z = float(state.get("detected_z", 0.0))
        d.extended = int(state.get("extended", 0))
        d.calm = int(state.get("calm", 0))  # a model saved before ``quiet`` existed: 0
        if "extremes" in state:  # a model saved before records were scored has none
            d.extremes.load(state["extremes"])
        d.recurrence.onsets.extend(int(t) for t in state.get("onsets", []))
        d.recurrence.last = int(state.get("last_onset", d.recurrence.last))
        if state.get("opinion"):  # a model saved before opinions existed has none
            d.opinion.load(state["opinion"])
        return d
