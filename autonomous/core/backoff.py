"""The one backoff helper: exponential, capped, optionally jittered, reset on success.

Parameters come from policy (``backoff`` section); nothing here holds a default limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "BackoffSpec"]


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
        base = min(self.spec.max_delay, self.spec.initial * self.spec.factor ** (n - 1))
        if self.spec.jitter:
            spread = base * self.spec.jitter
            base = base - spread + self.rng.random() * 2 * spread
        return max(0.0, min(self.spec.max_delay, base))

    def record_failure(self) -> float:
        self.failures += 1
        return self.delay()

    def record_success(self) -> None:
        self.failures = 0

    @property
    def exhausted(self) -> bool:
        return self.spec.max_retries is not None and self.failures >= self.spec.max_retries
