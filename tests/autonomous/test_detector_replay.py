"""Second opinions (stream_opinion) and the benchmark's replay of the detector (nab_replay)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autonomous.health_monitor import nab_replay
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.health_monitor.stream_opinion import FAMILIES, make_opinion
from autonomous.resources.loader import load_tree

_TREE = load_tree(Path(__file__).resolve().parents[2]).tree
assert _TREE is not None
BASE = StreamParams.from_policy(_TREE.policies["governed"]["health"]["anomaly"]["stream"])
OPTIONS = [("none", 0.0, 0.0), ("cusum", 5.0, 0.5), ("cusum", 20.0, 1.0), ("tail", 3.0, 0.0),
           ("season", 3.0, 24.0), ("shift", 4.0, 6.0)]


def _series(n: int = 2500, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 20 + 3 * np.sin(np.arange(n) / 30) + rng.normal(0, 1, n)
    x[np.arange(400, n, 96)] += 30  # a spike on a period
    x[n // 2: n // 2 + 10] += 15  # a burst
    x[2 * n // 3:] -= 12  # a level shift
    x[5 * n // 6] += 80  # a record
    return x


def _live(x: np.ndarray, p: StreamParams) -> np.ndarray:
    d = StreamingDetector(p)
    return np.array([1.0 if d.update(float(v)).detected else 0.0 for v in x])


def test_replay_equals_the_detector_row_for_row() -> None:
    x = _series(1200)  # every feature of the series (spikes, burst, shift, record) in half the rows
    tr = nab_replay.trace(x, replace(BASE, change_sigma=1.5, window=120, min_samples=20))
    grid = itertools.product((0.999, 0.99995), (1.5, 3.0), (30, 240), (0, 30), (0, 3), OPTIONS)
    alarms = 0
    for thr, cs, sup, quiet, season, (fam, k, arg) in grid:
        p = replace(tr.params, threshold=thr, change_sigma=cs, suppress=sup, quiet=quiet,
                    season_repeats=season, opinion=fam, opinion_k=k, opinion_arg=arg)
        want = _live(x, p)
        assert np.array_equal(nab_replay.detections(tr, p), want), p
        alarms += int(want.sum())
    assert alarms > 0


def test_replay_refuses_what_it_does_not_cover() -> None:
    tr = nab_replay.trace(_series(600), replace(BASE, change_sigma=2.0))
    with pytest.raises(ValueError, match="change_sigma"):
        nab_replay.candidates(tr, replace(BASE, change_sigma=1.5))
    with pytest.raises(ValueError, match="hold"):
        nab_replay.detections(tr, replace(BASE, change_sigma=2.0, hold=10))


def test_opinions_veto_what_they_should() -> None:
    flat = np.r_[np.full(200, 10.0), 10.5]  # a small step after a flat stretch
    noisy = np.r_[np.random.default_rng(1).normal(10, 3, 200), 10.5]
    tail = make_opinion("tail", 3.0, 0.0, 100, 10)
    assert [tail.update(float(v), 0.0) for v in flat][-1]  # std 0: any change is news
    tail = make_opinion("tail", 3.0, 0.0, 100, 10)
    assert not [tail.update(float(v), 0.0) for v in noisy][-1]
    cusum = make_opinion("cusum", 5.0, 0.5, 100, 10)
    assert not cusum.update(0.0, 3.0)  # 2.5 of 5
    assert cusum.update(0.0, 3.0)  # 5.0: sustained
    assert not make_opinion("cusum", 5.0, 0.5, 100, 10).update(0.0, -2.0)
    # a value like the one a period ago is routine; one unlike it is news
    period = np.tile(np.r_[np.zeros(23), 50.0], 20) + np.random.default_rng(2).normal(0, 1, 480)
    season = make_opinion("season", 3.0, 24.0, 200, 20)
    seen = [season.update(float(v), 0.0) for v in period]
    assert not any(seen[23 + 24 * 15::24])
    assert season.update(float(period[-24] + 50), 0.0)
    shift = make_opinion("shift", 4.0, 6.0, 100, 10)
    base = np.random.default_rng(4).normal(0, 1, 150)
    assert not [shift.update(float(v), 0.0) for v in base][-1]
    assert [shift.update(3.0, 0.0) for _ in range(6)][-1]  # six rows 3σ up: a change point
    with pytest.raises(ValueError, match="opinion"):
        make_opinion("vote", 1.0, 0.0, 10, 10)


@pytest.mark.parametrize("fam, k, arg", OPTIONS[1:])
def test_opinion_state_round_trips(fam: str, k: float, arg: float) -> None:
    assert fam in FAMILIES
    x = _series(1800)
    p = replace(BASE, opinion=fam, opinion_k=k, opinion_arg=arg)
    whole = _live(x, p)
    first = StreamingDetector(p)
    for v in x[:900]:
        first.update(float(v))
    again = StreamingDetector.from_state(p, first.state())
    rest = np.array([1.0 if again.update(float(v)).detected else 0.0 for v in x[900:]])
    assert np.array_equal(rest, whole[900:])


def _edges(seed: int = 7) -> np.ndarray:
    """Bursts of records (a candidate on every row) between calm stretches of random length:
    every row after a detection is a candidate, so each suppression's last row shows."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(10, 1, 300)]
    top = 20.0
    for _ in range(40):
        burst = int(rng.integers(1, 25))
        top *= float(rng.choice([1.05, 1.5, 3.0]))
        parts.append(top + np.arange(burst) * 0.01 * top)  # each row above all before
        top = parts[-1][-1]
        parts.append(rng.normal(10, 1, int(rng.integers(0, 30))))
    return np.concatenate(parts)


def test_replay_equals_the_detector_at_suppression_edges() -> None:
    x = _edges()
    base = replace(BASE, window=60, min_samples=10, record_window=400, season_repeats=0)
    tr = nab_replay.trace(x, replace(base, change_sigma=1.5))
    alarms = 0
    for sup, quiet, esc in itertools.product((0, 3, 7, 16), (0, 1, 4, 9), (1.5, 2.0, 1e9)):
        p = replace(tr.params, suppress=sup, quiet=quiet, escalation=esc)
        want = _live(x, p)
        assert np.array_equal(nab_replay.detections(tr, p), want), p
        alarms += int(want.sum())
    assert alarms > 100
