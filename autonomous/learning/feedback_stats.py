"""Feedback statistics, pure: an area is flagged only when its interval excludes the baseline.

Each area carries (bad, total) counts of feedback (negative ratings, false-positive labels, …).
The Wilson score interval at ``z`` bounds its bad rate; an area is flagged worse than the
baseline only when the whole interval lies above it (better: below it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class AreaFinding:
    area: str
    bad: int
    total: int
    rate: float
    low: float
    high: float
    verdict: str  # "worse" | "better" | "inconclusive"


def wilson(bad: int, total: int, z: float) -> tuple[float, float]:
    if total <= 0:
        return 0.0, 1.0
    if not 0 <= bad <= total:
        raise ValueError("bad must be in [0, total]")
    p = bad / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def analyze_areas(counts: Mapping[str, tuple[int, int]], baseline: float, z: float) -> list[AreaFinding]:
    """Findings per area, worst first; only intervals excluding ``baseline`` get a verdict."""
    out: list[AreaFinding] = []
    for area, (bad, total) in counts.items():
        low, high = wilson(bad, total, z)
        verdict = "worse" if low > baseline else "better" if high < baseline else "inconclusive"
        out.append(AreaFinding(area, bad, total, bad / total if total else 0.0, low, high, verdict))
    return sorted(out, key=lambda f: (-f.low, f.area))
