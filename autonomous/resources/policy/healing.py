"""Self-healing policy: circuit breakers."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["BreakerPolicy", "HealingPolicy", "SECTIONS"]


class BreakerPolicy(Strict):
    failure_threshold: int = Field(ge=1, description="Failures that open the breaker")
    timeout_seconds: float = Field(gt=0, description="Open → half-open after")
    success_threshold: int = Field(ge=1, description="Half-open successes that close it")


class HealingPolicy(Strict):
    breaker: BreakerPolicy


SECTIONS = {"healing": HealingPolicy}
