"""Core policy sections: governance, reconcile loop, service supervision."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "ACTION_KINDS",
    "SECTIONS",
    "ActionMode",
    "BackoffPolicy",
    "GovernancePolicy",
    "ReconcilePolicy",
    "SupervisionPolicy",
]

ActionMode = Literal["enforce", "dry_run", "require_approval"]

ACTION_KINDS = (
    "start", "stop", "restart", "restart_all", "rollback", "update", "optimization",
    "degrade", "fallback", "isolate", "retry", "alert_human", "survival", "backup", "restore",
    "throttle", "mode", "stop_by_removal",
    # health and alerting (controllers.health / controllers.telemetry): an alert episode's
    # lifecycle, a notification (escalation included), a health finding published as intent
    # for healing (an incident), housekeeping asked for now (retention, log rotation)
    "alert", "notify", "incident", "housekeeping",
    "release", "close_incident",  # healing: a new revision frees a service; a removed one
    "backoff", "resume",  # healing: CrashLoopBackOff; an incident whose approval was decided
    # healing: proven health forgives the counted restarts; a failing service kept stopped
    # while its isolation awaits approval; degraded mode / fallback undone once healthy again
    "reset_restarts", "hold", "recover",
    "settle",  # healing: a ladder step's observed verdict recorded (healed / the next step)
    # the gateway owner (re)writes Traefik's routes to what runs: ready standbys, fallback,
    # rollout weights. Not ``update`` (a software update, approved in governed mode)
    "route",
    # evolution: a step that carries out a decision already taken (a proposal or an update
    # set that was let through: its checks' conclusion, its rollout's start, the next member,
    # a released commit) or records one (a proposal closed). Not ``update``: governed asks
    # once per decision, not once per step; emergency_stop freezes it like ``update``
    "proceed",
)


class BackoffPolicy(Strict):
    initial_seconds: float = Field(ge=0, description="First delay")
    factor: float = Field(ge=1, description="Growth per failure")
    max_seconds: float = Field(gt=0, description="Cap on the delay")
    jitter: float = Field(0.0, ge=0, le=1, description="± fraction of the delay")
    max_retries: int | None = Field(None, ge=1, description="Then the resource is Stalled")


class GovernancePolicy(Strict):
    approval_ttl_seconds: float = Field(gt=0, description="An approval request expires after")
    actions: dict[str, ActionMode] = Field(
        description="Per action kind: enforce, dry_run (decide and record only) or "
                    "require_approval")

    @field_validator("actions")
    @classmethod
    def _kinds(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(ACTION_KINDS))
        if unknown:
            raise ValueError(f"unknown action kind {unknown[0]!r}; allowed: "
                             f"{', '.join(ACTION_KINDS)}")
        missing = sorted(set(ACTION_KINDS) - set(v))
        if missing:
            raise ValueError(f"missing action kind(s) {', '.join(missing)}: every kind needs "
                             "enforce, dry_run or require_approval")
        return v


class ReconcilePolicy(Strict):
    interval_jitter: float = Field(ge=0, le=1, description="± fraction on controller intervals")
    default_interval_seconds: float = Field(
        10.0, gt=0, le=86400, description="Reconcile period of a controller whose subsystem "
        "has no interval_seconds under spec.controllers in the OperatorConfig")
    action_backoff: BackoffPolicy = Field(description="Per-resource backoff of failing actions")


class RestartBudget(Strict):
    max_restarts: int = Field(ge=1, description="Restarts allowed inside the window")
    window_seconds: float = Field(gt=0)


class RevisionRolloutPolicy(Strict):
    max_unavailable: int = Field(0, ge=0, le=1, description="0: a new revision of a healthy "
                                 "service must pass readiness beside the running process (on "
                                 "its own or a spare port) before that process is stopped; a "
                                 "revision that fails is refused and the running one kept. 1: "
                                 "stop, then start (the service is down while it starts)")
    ready_timeout_seconds: float = Field(10.0, gt=0, le=300, description="How long the new "
                                         "revision gets to pass readiness beside the old one")
    settle_seconds: float = Field(1.0, ge=0, le=60, description="A service with no probe "
                                  "proves itself by running this long beside the old one")


class SupervisionPolicy(Strict):
    restart_backoff: BackoffPolicy = Field(description="Delay before restarting an exited "
                                           "process (first restart uses attempt 0 = no delay)")
    restart_budget: RestartBudget
    healthy_reset_seconds: float = Field(gt=0, description="Proven health that resets the "
                                         "restart counter")
    probe_concurrency: int = Field(ge=1, description="Parallel health probes")
    rollout: RevisionRolloutPolicy = Field(default_factory=RevisionRolloutPolicy,
                                           description="Replacing a running process by a new "
                                           "revision (command/env/version/port edits)")

    @model_validator(mode="after")
    def _sane(self) -> SupervisionPolicy:
        return self


SECTIONS = {
    "governance": GovernancePolicy,
    "reconcile": ReconcilePolicy,
    "supervision": SupervisionPolicy,
}
