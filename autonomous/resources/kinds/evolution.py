"""``Rollout``: one staged update of a Service from its running version to a candidate.

The evolution controller reconciles it: starts the candidate on an operator-assigned backend
port, shifts the gateway's weights phase by phase (``policies/evolution.yaml``, or the
``phases`` override here), judges paired probes, and commits, rolls back or quarantines.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict
from autonomous.resources.policy.evolution import PhasePolicy, RolloutPolicy

__all__ = ["KINDS", "ApiCheckSpec", "RolloutSpec", "SourceSpec", "UpdateChecksSpec",
           "UpdateSourceSpec"]


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


class SourceSpec(Strict):
    """One offline update source (``autonomous/evolution/sources.py``)."""
    kind: Literal["wheel_dir", "release_dir", "git_tags"] = Field(
        description="wheel_dir: wheels of one distribution; release_dir: <name>-<version>[.ext]"
                    " entries; git_tags: tags of a repository (PEP 440 order, not git's)")
    path: str = Field(min_length=1, description="Directory or repository, relative to the root "
                      "or absolute")
    name: str | None = Field(None, description="Distribution (wheel_dir) or release name "
                             "(release_dir); default: the service name")
    prefix: str = Field("v", description="git_tags: tag prefix before the version")


class ApiCheckSpec(Strict):
    path: str = Field(description="GET path on the sandboxed candidate (starts with '/')")
    status: int = Field(200, ge=100, le=599, description="Status it must answer")

    @model_validator(mode="after")
    def _check(self) -> ApiCheckSpec:
        if not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must start with '/'")
        return self


class UpdateChecksSpec(Strict):
    """What a version must pass before any traffic reaches it (found by a scan or asked for
    through the API), in order: snapshot → regression tests → sandbox. A failure closes the
    proposal as ``failed`` with the step and its output, quarantines the version and notifies."""
    snapshot_paths: list[str] = Field(default_factory=list, description="Root-relative or "
                                      "'{data_dir}/...' paths snapshotted on the backup engine "
                                      "before the update (plan 'evolution-<service>')")
    repository: str = Field("{data_dir}/backups/evolution", min_length=1,
                            description="Backup repository of those snapshots")
    keep_snapshots: int = Field(5, ge=1, le=1000, description="Snapshots of this Service kept "
                                "in that repository (older ones pruned after each new one)")
    test_command: list[str] | None = Field(None, min_length=1, description="The service's "
                                           "regression suite (argv, run in the root; '{python}' "
                                           "expanded); exit 0 passes")
    test_timeout_seconds: float = Field(300.0, gt=0, le=3600,
                                        description="The suite is killed (its whole process "
                                        "group) and fails after this long")
    api_checks: list[ApiCheckSpec] = Field(
        default_factory=lambda: [ApiCheckSpec(path="/health")],
        description="Checks against the candidate started alone on a free loopback port")
    ready_path: str = Field("/ready", description="The sandboxed candidate must answer it 2xx "
                            "before the checks run")
    ready_timeout_seconds: float = Field(20.0, gt=0, le=600,
                                         description="A candidate not ready by then fails")

    @model_validator(mode="after")
    def _ready(self) -> UpdateChecksSpec:
        if not self.ready_path.startswith("/"):
            raise ValueError(f"ready_path {self.ready_path!r} must start with '/'")
        return self


class UpdateSourceSpec(Strict):
    """Where updates of one Service come from, and how a found version is run.

    ``POST /api/evolution/scan`` looks here; a newer, non-quarantined version becomes a
    proposed desired-state patch of the Service (its ``version`` and, with ``command``, its
    argv), applied per governance mode by the evolution controller.
    """
    service: str = Field(min_length=1, description="Service these updates are for")
    sources: list[SourceSpec] = Field(min_length=1, description="Searched together")
    prereleases: bool = Field(False, description="Also propose pre-releases (rc, beta)")
    command: list[str] | None = Field(None, min_length=1, description="The Service's argv for a "
                                      "found version: '{version}' and '{source}' (the wheel, "
                                      "release or tag found) are expanded; absent: only "
                                      "spec.version changes")
    checks: UpdateChecksSpec = Field(default_factory=UpdateChecksSpec,
                                     description="Checks every update of the Service passes "
                                     "first (also one asked for through the API)")


KINDS = {"Rollout": RolloutSpec, "UpdateSource": UpdateSourceSpec}
