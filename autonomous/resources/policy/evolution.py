"""Evolution policy: the judge's statistical gates and the staged-rollout phases.

Values in ``policies/evolution.yaml``; every field is required but
``rollout.on_operator_restart`` (``resume`` unless set), ``judge.immediate_windows`` (2),
``judge.min_round_interval_seconds`` (1) and ``judge.round_interval_seconds`` (5).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "EvolutionPolicy", "JudgePolicy", "PhasePolicy", "RolloutPolicy"]

PhaseName = Literal["SHADOW", "CANARY", "BETA", "STABLE", "FULL"]


class JudgePolicy(Strict):
    min_samples: int = Field(ge=1, description="Samples per version per phase needed to pass")
    floor_samples: int = Field(ge=1, description="Below this per version: no verdict at all")
    latency_p_value: float = Field(gt=0, lt=1, description="Mann-Whitney U significance")
    latency_ratio_fail: float = Field(gt=1, description="Median ratio that fails when significant")
    latency_ratio_immediate: float = Field(gt=1, description="Median ratio: rollback before "
                                           "min_samples (still needs immediate_p_value)")
    immediate_p_value: float = Field(gt=0, lt=1, description="Mann-Whitney U significance the "
                                     "immediate path needs")
    immediate_min_samples: int = Field(ge=1, description="Samples per version before the "
                                       "immediate path may roll back")
    immediate_min_rounds: int = Field(ge=1, description="Paired rounds, every one slower, "
                                      "before the immediate path may roll back")
    immediate_windows: int = Field(2, ge=1, le=10, description="Consecutive windows of "
                                   "immediate_min_rounds rounds, each slower in every round "
                                   "(window median ratio ≥ latency_ratio_fail), before the "
                                   "immediate path may roll back: a start-up or load burst "
                                   "is one window, a regression persists")
    min_round_interval_seconds: float = Field(
        1.0, ge=0, le=3600, description="Paired probe rounds closer together than this (real "
        "time) are not taken: rounds a moment apart share one contention episode of the host "
        "(a core busy for a second slows whichever version runs there), so they are not "
        "independent evidence")
    round_interval_seconds: float = Field(
        5.0, gt=0, le=3600, description="While a rollout runs, the evolution controller "
        "passes (and takes a paired probe round) this often, whatever its own interval: a "
        "phase needs min_rounds rounds, so this sets how long a phase takes to judge")
    min_rounds: int = Field(ge=1, description="Paired probe rounds needed to pass, or to fail "
                            "on latency")
    round_p_value: float = Field(gt=0, lt=1, description="Wilcoxon signed-rank significance of "
                                 "the per-round paired latency ratios (slower in most rounds)")
    error_p_value: float = Field(gt=0, lt=1, description="Fisher's exact test significance")
    score_rollback: float = Field(ge=0, le=100, description="Score below this rolls back")
    score_advance: float = Field(ge=0, le=100, description="Score at or above this advances")

    @model_validator(mode="after")
    def _order(self) -> JudgePolicy:
        if self.floor_samples > self.min_samples:
            raise ValueError("floor_samples must not exceed min_samples")
        if not self.floor_samples <= self.immediate_min_samples <= self.min_samples:
            raise ValueError("immediate_min_samples must lie in [floor_samples, min_samples]")
        if self.immediate_min_rounds > self.min_rounds:
            raise ValueError("immediate_min_rounds must not exceed min_rounds")
        if self.round_interval_seconds < self.min_round_interval_seconds:
            raise ValueError("round_interval_seconds must be ≥ min_round_interval_seconds (a "
                             "round taken sooner is skipped)")
        if self.immediate_p_value > self.latency_p_value:
            raise ValueError("immediate_p_value must be ≤ latency_p_value")
        if self.latency_ratio_immediate < self.latency_ratio_fail:
            raise ValueError("latency_ratio_immediate must be ≥ latency_ratio_fail")
        if self.score_rollback > self.score_advance:
            raise ValueError("score_rollback must be ≤ score_advance")
        return self


class PhasePolicy(Strict):
    name: PhaseName
    weight: int = Field(ge=0, le=100, description="Percent of ordinary traffic to the candidate")
    min_bake_seconds: float = Field(ge=0, description="Time in phase before it may advance")
    deadline_seconds: float = Field(gt=0, description="No passing verdict by then: roll back")


class RolloutPolicy(Strict):
    phases: list[PhasePolicy] = Field(min_length=1, description="In order; last must be FULL")
    on_operator_restart: Literal["resume", "rollback"] = Field(
        "resume", description="A rollout found running when the operator starts again (it was "
        "killed mid-rollout): resume it from its persisted phase with a fresh candidate (the "
        "phase's bake clock and deadline keep running), or roll it back to the old version")

    @model_validator(mode="after")
    def _full_last(self) -> RolloutPolicy:
        names = [p.name for p in self.phases]
        if names[-1] != "FULL" or self.phases[-1].weight != 100:
            raise ValueError("the last phase must be FULL with weight 100")
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique")
        weights = [p.weight for p in self.phases]
        if weights != sorted(weights):
            raise ValueError("phase weights must not decrease")
        return self


class EvolutionPolicy(Strict):
    judge: JudgePolicy
    rollout: RolloutPolicy


SECTIONS = {"evolution": EvolutionPolicy}
