"""The one backoff helper: exponential, capped, optionally jittered, reset on success.

Parameters come from policy (``backoff`` section); nothing here holds a default limit.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "BackoffSpec", "stable_draw"]


def stable_draw(key: str) -> float:
    """A jitter draw in [0, 1) derived from ``key`` alone: the same key gives the same
    draw, in every process and run (a pure decision's jitter, e.g. ``incident/attempt``)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class BackoffSpec:
    initial: float
    factor: float
    max_delay: float
    jitter: float = 0.0  # fraction of the delay, 0..1
    max_retries: int | None = None

    @classmethod
    def from_policy(cls, p: dict) -> BackoffSpec:
        return cls(
            initial=float(p["initial_seconds"]),
            factor=float(p["factor"]),
            max_delay=float(p["max_seconds"]),
            jitter=float(p.get("jitter", 0.0)),
            max_retries=p.get("max_retries"),
        )

    def delay(self, attempt: int, draw: float) -> float:
        """The delay before try ``attempt`` (1-based; 0 for none) with the jitter ``draw``
        in [0, 1) (0.5 is no jitter): pure, the one formula."""
        if attempt <= 0:
            return 0.0
        base = min(self.max_delay, self.initial * self.factor ** (attempt - 1))
        if self.jitter:
            spread = base * self.jitter
            base = base - spread + draw * 2 * spread
        return max(0.0, min(self.max_delay, base))


@dataclass
class Backoff:
    """Per-resource failure counter that yields the next delay."""

    spec: BackoffSpec
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int | None = None) -> float:
        n = self.failures if attempt is None else attempt
        if n <= 0:
            return 0.0
        return self.spec.delay(n, self.rng.random() if self.spec.jitter else 0.5)

    def record_failure(self) -> float:
        self.failures += 1
        return self.delay()

    def record_success(self) -> None:
        self.failures = 0

    @property
    def exhausted(self) -> bool:
        return self.spec.max_retries is not None and self.failures >= self.spec.max_retries
