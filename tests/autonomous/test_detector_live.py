"""The health monitor's live anomaly path runs the detector and parameters NAB scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autonomous.core.clock import FakeClock
from autonomous.health_monitor.anomaly_detector import AnomalyDetector
from autonomous.health_monitor.stream_detector import StreamingDetector, StreamParams
from autonomous.resources.loader import load_tree
from autonomous.store import Store
from bench import nab_eval

_TREE = load_tree(Path(__file__).resolve().parents[2]).tree
assert _TREE is not None
POLICY = _TREE.policies["governed"]["health"]


def _series(n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(16)
    x = 50 + 5 * np.sin(np.arange(n) / 40) + rng.normal(0, 1, n)
    x[900:903] += 40  # a spike
    x[1800:] += 25  # a level shift
    x[2500] -= 60  # a dip below anything seen
    return x


def test_bench_and_live_path_share_detector_and_parameters(store: Store) -> None:
    live = AnomalyDetector(store, FakeClock(), POLICY["anomaly"], POLICY["anomaly_sigma"])
    assert nab_eval.policy_params() == live.params
    assert live.params == StreamParams.from_policy(POLICY["anomaly"]["stream"])
    x = _series()
    bench = nab_eval.detections(x, nab_eval.policy_params())
    ref = StreamingDetector(live.params)
    opened: list[int] = []
    for i, v in enumerate(x):
        want = ref.update(float(v))
        report = live.detect({"cpu.percent": float(v)}, 1000.0 + 60 * i)
        assert report.score == want.score  # one metric: the report's score is its score
        assert bool(bench[i]) == want.detected
        if report.new_events:
            opened.append(i)
    assert type(live.streams["cpu.percent"]) is StreamingDetector
    # every event the live path opened is a detection the bench scores
    assert opened and all(bench[i] for i in opened)
    assert {900, 2500} <= {i for i in np.flatnonzero(bench)}
