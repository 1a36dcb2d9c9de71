"""The one percentile: linear interpolation between closest ranks (numpy's default, the
definition Prometheus' ``histogram_quantile`` approximates), ``None`` when there is no value."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["percentile", "percentiles"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q!r} is outside 0..100")
    data = sorted(values)
    k = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 90, 99)
                ) -> dict[str, float | None]:
    """``{"p50": …, "p90": …}`` by :func:`percentile`; None values when there is no value."""
    data = sorted(values)
    return {f"p{q:g}": percentile(data, q) for q in qs}
