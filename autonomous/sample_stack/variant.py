"""A candidate flag for rollout tests: ``ATLAS_SAMPLE_VARIANT=good|slow|errors|never_ready``.

good (or unset): unchanged. slow: every answer waits an extra 50 % of its handling time, at
least ``ATLAS_SAMPLE_SLOW_MIN_MS`` (default 2 ms, so a sub-millisecond endpoint is measurably
slower too). errors: every answer except /ready is a 500. never_ready: /ready and /health
answer 503 forever (the process runs, the version never becomes ready).
"""

from __future__ import annotations

import os
import time

__all__ = ["VARIANTS", "Variant", "from_env"]

VARIANTS = ("good", "slow", "errors", "never_ready")


class Variant:
    def __init__(self, name: str, slow_min_ms: float = 2.0) -> None:
        if name not in VARIANTS:
            raise ValueError(f"ATLAS_SAMPLE_VARIANT={name!r}; allowed: {', '.join(VARIANTS)}")
        self.name = name
        self.slow_min_s = slow_min_ms / 1000.0

    def status_for(self, path: str) -> int | None:
        """An answer status forced by the variant, or None."""
        if self.name == "never_ready" and path in ("/ready", "/health"):
            return 503
        if self.name == "errors" and path != "/ready":
            return 500
        return None

    def after(self, started_mono: float) -> None:
        """Called once the answer is ready: the slow variant waits here."""
        if self.name == "slow":
            spent = time.monotonic() - started_mono
            time.sleep(max(0.5 * spent, self.slow_min_s))


def from_env() -> Variant:
    return Variant(os.environ.get("ATLAS_SAMPLE_VARIANT", "good") or "good",
                   float(os.environ.get("ATLAS_SAMPLE_SLOW_MIN_MS", "2")))
