"""Feedback areas are flagged only when their interval excludes the baseline."""

from __future__ import annotations

import pytest

from autonomous.learning.feedback_stats import analyze_areas, wilson


def test_wilson_known_value() -> None:
    low, high = wilson(5, 10, 1.96)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert wilson(0, 0, 1.96) == (0.0, 1.0)


def test_flags_only_when_interval_excludes_baseline() -> None:
    found = {f.area: f.verdict for f in analyze_areas(
        {"alerts.cpu": (60, 100), "alerts.disk": (3, 5), "alerts.mem": (2, 200)}, 0.3, 1.96)}
    # 3/5 bad is a high rate but too few samples to exclude 0.3
    assert found == {"alerts.cpu": "worse", "alerts.disk": "inconclusive", "alerts.mem": "better"}
    with pytest.raises(ValueError):
        wilson(3, 2, 1.96)
