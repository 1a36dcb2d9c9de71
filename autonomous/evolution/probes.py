"""Paired synthetic probes: the baseline and the candidate hit at the same moment.

Low traffic is normal on a robot, so the judge cannot wait for live requests: each round sends
``n`` GETs to both versions, two at a time (one to each, concurrently; the order alternates
so neither version always goes second). A round's answered latencies share the moment's
scheduling noise, which is why the judge also gets one figure per round and tests those
across rounds: :attr:`Round.ratio`, the median over the round's pairs of the candidate's
latency over the baseline's in the same pair — both probed at the same moment, so a load
burst that slows a pair slows both sides of it and cancels out in its ratio (the ratio of the
two medians, :attr:`Round.ratio_of_medians`, does not cancel it: a burst that hits the
candidate's probes of one round more than the baseline's moves it).
Used by the evolution controller and by ``bench/bench_rollout.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Getter", "Round", "paired_round"]


class _Answer(Protocol):
    status_code: int


class Getter(Protocol):
    async def get(self, url: str, *, timeout: float) -> _Answer: ...


@dataclass
class Round:
    """One round: answered latencies (ms) and failed probes (5xx, timeouts, refused)."""
    base: list[float] = field(default_factory=list)
    cand: list[float] = field(default_factory=list)
    base_errors: int = 0
    cand_errors: int = 0
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (base, cand), both answered

    @property
    def ratio(self) -> float | None:
        """Median over the pairs of candidate / baseline latency; None without a pair."""
        rs = [c / b for b, c in self.pairs if b > 0]
        return statistics.median(rs) if rs else None

    @property
    def ratio_of_medians(self) -> float | None:
        """Candidate median / baseline median; None when either answered nothing."""
        if not self.base or not self.cand:
            return None
        mb = statistics.median(self.base)
        return statistics.median(self.cand) / mb if mb > 0 else None


async def paired_round(client: Getter, base_url: str, cand_url: str, n: int,
                       timeout: float = 2.0) -> Round:
    async def one(url: str) -> float | None:
        t0 = time.perf_counter()
        try:
            r = await client.get(url, timeout=timeout)
        except Exception:  # noqa: BLE001 - a failed probe is an error sample
            return None
        return (time.perf_counter() - t0) * 1000 if r.status_code < 500 else None

    out = Round()
    for i in range(n):
        if i % 2:
            k, b = await asyncio.gather(one(cand_url), one(base_url))
        else:
            b, k = await asyncio.gather(one(base_url), one(cand_url))
        if b is None:
            out.base_errors += 1
        else:
            out.base.append(b)
        if k is None:
            out.cand_errors += 1
        else:
            out.cand.append(k)
        if b is not None and k is not None:
            out.pairs.append((b, k))
    return out
