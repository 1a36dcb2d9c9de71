"""``Rollout``: one staged update of a Service from its running version to a candidate.

The evolution controller reconciles it: starts the candidate on an operator-assigned backend
port, shifts the gateway's weights phase by phase (``policies/evolution.yaml``, or the
``phases`` override here), judges paired probes, and commits, rolls back or quarantines.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from autonomous.resources.base import Strict
from autonomous.resources.policy.evolution import PhasePolicy, RolloutPolicy

__all__ = ["KINDS", "RolloutSpec"]


class RolloutSpec(Strict):
    service: str = Field(description="Service updated (must declare spec.traffic)")
    from_version: str = Field(description="Version running now (the baseline)")
    to_version: str = Field(description="Candidate version")
    command: list[str] = Field(min_length=1, description="Candidate argv; '{python}' and "
                               "'{port}' (its backend port) are expanded")
    env: dict[str, str] = Field(default_factory=dict, description="Extra candidate environment")
    probe_path: str = Field("/health", description="GET path probed on both versions at once")
    ready_path: str = Field("/ready", description="GET path the candidate must answer 2xx "
                            "before it is probed; until then no samples (the phase deadline "
                            "rolls a never-ready candidate back)")
    probes_per_observe: int = Field(10, ge=1, le=1000, description="Paired probes (baseline "
                                    "and candidate at once) per reconcile")
    phases: list[PhasePolicy] | None = Field(None, description="Override of the policy's "
                                             "phases (same rules: last is FULL at 100)")

    @model_validator(mode="after")
    def _check(self) -> RolloutSpec:
        if self.from_version == self.to_version:
            raise ValueError(f"to_version {self.to_version!r} equals from_version")
        for f in ("probe_path", "ready_path"):
            if not getattr(self, f).startswith("/"):
                raise ValueError(f"{f} {getattr(self, f)!r} must start with '/'")
        if self.phases is not None:
            RolloutPolicy(phases=self.phases)
        return self


KINDS = {"Rollout": RolloutSpec}
