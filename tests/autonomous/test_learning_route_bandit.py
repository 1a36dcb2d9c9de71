"""Thompson-sampling route choice: allowed set, cost penalty, propensity, determinism."""

from __future__ import annotations

import random

from autonomous.learning.route_bandit import choose


def test_prefers_better_model_and_respects_allowed() -> None:
    stats = {"strong": (90, 10), "weak": (50, 50)}
    picks = [choose(random.Random(i), ["strong", "weak"], stats, {}, (1, 1), 50) for i in range(50)]
    assert sum(p is not None and p.model == "strong" for p in picks) >= 48
    # strong is out (breaker open): weak is the only choice, propensity ~1
    only = choose(random.Random(0), ["weak"], stats, {}, (1, 1), 50)
    assert only is not None and only.model == "weak" and only.propensity > 0.95
    assert choose(random.Random(0), [], stats, {}, (1, 1), 50) is None


def test_cost_penalty_and_determinism() -> None:
    stats = {"strong": (90, 10), "weak": (85, 15)}
    c = choose(random.Random(3), ["strong", "weak"], stats, {"strong": 0.2}, (1, 1), 200)
    assert c is not None and c.model == "weak" and 0.9 < c.propensity <= 1.0
    assert choose(random.Random(7), ["strong", "weak"], stats, {}, (1, 1), 100) == \
        choose(random.Random(7), ["strong", "weak"], stats, {}, (1, 1), 100)
