"""The streaming detector's detections for many settings at once, from one pass per file.

A grid of thousands of settings (``bench/nab_eval.py``: detector fields × second opinions)
cannot re-run ``StreamingDetector`` per setting. Its update splits into parts that depend on
few fields each:

1. ``trace``: per row the likelihood score, level ``z`` and record flag (``observe``), which
   depend only on the windows (``likelihood_window`` …), not on ``threshold``,
   ``change_sigma``, the season check, the suppression or the opinion. Run once per file and
   window setting, at the lowest ``change_sigma`` of the grid (a higher one zeroes more rows).
2. ``agreement``: per row whether a second opinion (``stream_opinion``) backs a candidate;
   it sees ``x`` and ``z`` only.
3. ``candidates``: rows scoring at or above ``threshold`` and whether each recurs (season
   check), a loop over candidate rows only.
4. ``replay``: the suppression (``suppress``, ``quiet``, ``escalation``; ``hold`` 0) over the
   candidate rows, event by event.

``replay(...)`` equals ``StreamingDetector.update`` row for row
(``tests/autonomous/test_detector_replay.py``), so the benchmark scores the product's code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from autonomous.health_monitor.stream_detector import Observation, StreamingDetector, StreamParams
from autonomous.health_monitor.stream_opinion import make_opinion
from autonomous.health_monitor.stream_windows import Recurrence

__all__ = ["Trace", "agreement", "candidates", "detections", "replay", "trace"]


@dataclass(frozen=True)
class Trace:
    """One file under one window setting, before thresholds and suppression."""

    params: StreamParams  # the setting traced (its change_sigma is the lowest allowed later)
    values: np.ndarray
    scored: np.ndarray  # bool: the row reached scoring (windows filled)
    score: np.ndarray  # likelihood (1 for a record, 0 within the traced change_sigma)
    z: np.ndarray
    record: np.ndarray  # bool


def trace(values: np.ndarray, params: StreamParams) -> Trace:
    """Run the detector's ``observe`` over ``values`` (no suppression, no opinion)."""
    det = StreamingDetector(replace(params, opinion="none"))
    n = len(values)
    scored, record = np.zeros(n, bool), np.zeros(n, bool)
    score, z = np.zeros(n), np.zeros(n)
    for i, x in enumerate(values):
        o = det.observe(float(x))
        if isinstance(o, Observation):
            scored[i], score[i], z[i], record[i] = True, o.score, o.z, o.record
    return Trace(params, np.asarray(values, float), scored, score, z, record)


def agreement(tr: Trace, family: str, k: float, arg: float) -> np.ndarray:
    """Per row: does the opinion back a candidate there (updated on scored rows only)."""
    op = make_opinion(family, k, arg, tr.params.window, tr.params.min_samples)
    out = np.zeros(len(tr.values), bool)
    for i in np.flatnonzero(tr.scored):
        out[i] = op.update(float(tr.values[i]), float(tr.z[i]))
    return out


def candidates(tr: Trace, p: StreamParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows scoring at or above ``p.threshold`` under ``p.change_sigma``; whether each recurs."""
    if p.change_sigma < tr.params.change_sigma:
        raise ValueError("change_sigma below the traced one: trace at the lowest")
    score = np.where(tr.record, 1.0, np.where(np.abs(tr.z) < p.change_sigma, 0.0, tr.score))
    rows = np.flatnonzero(tr.scored & (score >= p.threshold))
    recurs = np.zeros(len(rows), bool)
    if p.season_repeats:
        rec = Recurrence(p.season_repeats, p.season_tolerance, p.season_periods)
        for j, i in enumerate(rows):
            recurs[j] = rec.recurs(int(i) + 1)  # the detector counts rows from 1
            rec.add(int(i) + 1)
    return rows, recurs


def replay(tr: Trace, p: StreamParams, rows: np.ndarray, recurs: np.ndarray,
           agrees: np.ndarray) -> np.ndarray:
    """1.0 where the detector with ``p`` raises a detection (``candidates`` of ``p``)."""
    if p.hold:
        raise ValueError("replay covers hold 0 only")
    out = np.zeros(len(tr.values))
    absz = np.abs(tr.z)
    ends = np.zeros(0, int)
    if p.quiet:  # rows closing ``quiet`` calm rows in a row: a suppression may end there
        calm = tr.scored & (absz < p.change_sigma)
        idx = np.arange(len(calm))
        run = idx - np.maximum.accumulate(np.where(calm, -1, idx))
        ends = np.flatnonzero(run >= p.quiet)
    free_at, dz = -1, 0.0
    for i, r in zip(rows.tolist(), recurs.tolist()):
        if r or not agrees[i]:
            continue
        if i < free_at and not (tr.record[i] and absz[i] >= p.escalation * dz):
            continue
        out[i] = 1.0
        dz = max(float(absz[i]), 1.0)
        free_at = i + p.suppress + 1
        if p.quiet:
            j = int(np.searchsorted(ends, i + p.quiet))
            if j < len(ends):
                free_at = min(free_at, int(ends[j]))
    return out


def detections(tr: Trace, p: StreamParams) -> np.ndarray:
    """``replay`` of one setting from its trace (opinion computed here)."""
    rows, recurs = candidates(tr, p)
    return replay(tr, p, rows, recurs, agreement(tr, p.opinion, p.opinion_k, p.opinion_arg))
