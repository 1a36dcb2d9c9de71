"""``PolicySet``: a base policy (no ``mode``) or an overlay for one governance mode."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["GOVERNANCE_MODES", "KINDS", "PolicySetSpec"]

GOVERNANCE_MODES = ("governed", "growth", "emergency_stop")


class PolicySetSpec(Strict):
    mode: Literal["governed", "growth", "emergency_stop"] | None = Field(
        None, description="Governance mode this overlay applies to; omitted = base policy")
    policy: dict[str, Any] = Field(description="Policy sections (validated after merging)")


KINDS = {"PolicySet": PolicySetSpec}
