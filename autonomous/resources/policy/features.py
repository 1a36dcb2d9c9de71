"""Feature-flag policy: how the one owner of feature flags (controllers/features.py) talks to a
service's feature endpoint, and how often a requester reads its result (how long it waits is
the requester's: healing.verify.timeout_seconds, resilience.survival.feature_timeout_seconds)."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "FeaturesPolicy"]


class FeaturesPolicy(Strict):
    http_timeout_seconds: float = Field(gt=0, description="Timeout of one GET / PUT of a "
                                        "service's feature endpoint (spec.features.endpoint)")
    poll_seconds: float = Field(gt=0, description="How often a waiting requester reads the "
                                "owner's recorded state")


SECTIONS = {"features": FeaturesPolicy}
