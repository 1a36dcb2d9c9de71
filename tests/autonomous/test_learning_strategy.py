"""Healing strategy posterior: Beta quantiles and the lower-credible-bound chooser."""

from __future__ import annotations

import pytest

from autonomous.learning.strategy_posterior import (
    beta_cdf,
    beta_quantile,
    choose_strategy,
    lower_bound,
    posterior,
)


def test_beta_cdf_closed_forms() -> None:
    # Beta(1, 1) is uniform; Beta(2, 1) has CDF x^2; Beta(1, 3) has CDF 1 - (1 - x)^3.
    for x in (0.1, 0.37, 0.9):
        assert beta_cdf(x, 1, 1) == pytest.approx(x, abs=1e-9)
        assert beta_cdf(x, 2, 1) == pytest.approx(x * x, abs=1e-9)
        assert beta_cdf(x, 1, 3) == pytest.approx(1 - (1 - x) ** 3, abs=1e-9)


def test_beta_quantile_matches_scipy_when_available() -> None:
    stats = pytest.importorskip("scipy.stats")
    for a, b, q in ((1, 1, 0.05), (9, 3, 0.05), (30, 70, 0.1), (2.5, 0.7, 0.5)):
        assert beta_quantile(q, a, b) == pytest.approx(float(stats.beta.ppf(q, a, b)), abs=1e-7)


def test_chooser_prefers_proven_over_lucky() -> None:
    outcomes = {("crash", "restart"): (45, 5), ("crash", "rollback"): (2, 0)}
    # rollback's mean (3/4 with a Beta(1,1) prior) is below restart's 46/52, but more to the
    # point one lucky pair of successes must not beat fifty observations at the lower bound.
    choice = choose_strategy("crash", ["rollback", "restart"], outcomes, 1, 1, 0.95)
    assert choice is not None and choice[0] == "restart"
    restart = posterior("crash", "restart", 45, 5, 1, 1)
    assert choice[1] == pytest.approx(lower_bound(restart, 0.95))
    assert choice[1] < restart.mean


def test_chooser_edge_cases() -> None:
    assert choose_strategy("x", [], {}, 1, 1, 0.9) is None
    # Unseen strategies tie on the prior: the policy order decides.
    assert choose_strategy("x", ["a", "b"], {}, 1, 1, 0.9)[0] == "a"  # type: ignore[index]
    with pytest.raises(ValueError):
        posterior("x", "a", -1, 0, 1, 1)
    with pytest.raises(ValueError):
        lower_bound(posterior("x", "a", 1, 1, 1, 1), 1.5)
