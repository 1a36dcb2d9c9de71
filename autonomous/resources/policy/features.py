"""Feature-flag policy: how the one owner of feature flags (controllers/features.py) talks to a
service's feature endpoint (a requester that verifies its request waits by its own policy:
self-healing healing.verify.timeout_seconds / poll_seconds)."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "FeaturesPolicy"]


class FeaturesPolicy(Strict):
    http_timeout_seconds: float = Field(gt=0, description="Timeout of one GET / PUT of a "
                                        "service's feature endpoint (spec.features.endpoint)")


SECTIONS = {"features": FeaturesPolicy}
