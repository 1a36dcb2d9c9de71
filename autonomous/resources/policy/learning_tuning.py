"""Learning-engine tuning: the safe optimizer, the model router, the pattern analyzer.

Values in ``policies/learning_tuning.yaml``. The optimizer's targets declare, per parameter,
the hard bounds and the box around the last good value that a cycle may explore; the router
declares its cost penalties; the pattern analyzer its thresholds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "SECTIONS",
    "ConstraintLimit",
    "ObjectivePolicy",
    "OptimizerPolicy",
    "OptimizerTarget",
    "ParameterBox",
    "PatternPolicy",
    "RoutingPolicy",
]


class ParameterBox(Strict):
    lower: float = Field(description="Hard lower bound of the parameter")
    upper: float = Field(description="Hard upper bound of the parameter")
    integer: bool = Field(False, description="Only whole values are tried")
    box_fraction: float = Field(gt=0, le=1, description="Half-width of the box explored around "
                                "the last good value, as a fraction of upper - lower")
    file: str | None = Field(None, description="Git-tracked YAML file a proposal patches")
    path: str | None = Field(None, description="Field path of the value inside that file")

    @model_validator(mode="after")
    def _order(self) -> ParameterBox:
        if self.upper <= self.lower:
            raise ValueError("upper must be greater than lower")
        return self


class ObjectivePolicy(Strict):
    metric: str = Field(min_length=1, description="Measured metric the optimizer improves")
    direction: Literal["maximize", "minimize"]


class ConstraintLimit(Strict):
    max: float = Field(gt=0, description="A trial measuring more than this is unsafe")


class OptimizerTarget(Strict):
    objective: ObjectivePolicy
    constraints: dict[str, ConstraintLimit] = Field(min_length=1, description="Metric -> limit")
    parameters: dict[str, ParameterBox] = Field(min_length=1)


class OptimizerPolicy(Strict):
    trials_per_cycle: int = Field(ge=1, description="Trials in one optimization cycle")
    max_unsafe_trials: int = Field(ge=0, description="Unsafe trials after which a cycle stops")
    candidates: int = Field(ge=10, description="Random candidates scored per suggestion")
    safety_beta: float = Field(ge=0, description="A candidate is tried only when mean + beta·sd "
                               "of every constraint's model stays within its limit")
    explore_kappa: float = Field(ge=0, description="Upper-confidence weight on the objective")
    length_scale: float = Field(gt=0, description="Kernel length scale, in box units (0..1)")
    constraint_sd: float = Field(gt=0, description="Prior sd of metric/limit - 1 away from data")
    noise_sd: float = Field(gt=0, description="Measurement noise sd of metric/limit")
    bake_margin: float = Field(ge=0, description="A bake is bad when a constraint metric exceeds "
                               "limit × (1 + margin), or the objective is worse than the last "
                               "good value by more than this fraction")
    targets: dict[str, OptimizerTarget] = Field(description="Tunable services and parameters")


class RoutingPolicy(Strict):
    cost: dict[str, float] = Field(min_length=1, description="Relative cost per model (0 = "
                                   "free); its keys are the models the router may choose")
    cost_lambda: float = Field(ge=0, description="Reward = success - lambda × cost")
    prior_strength: float = Field(ge=0, description="Pseudo-observations a query class borrows "
                                  "from the model's pooled success rate")
    propensity_draws: int = Field(ge=1, description="Draws estimating a choice's propensity")
    min_samples: int = Field(ge=1, description="Samples before a routing rule is stated")
    max_pending: int = Field(ge=1, description="Decisions awaiting an outcome kept; older "
                             "ones are dropped (their outcome is then ignored)")
    max_decisions_logged: int = Field(ge=1, description="Newest decisions kept in the log")
    breaker_failures: int = Field(ge=1, description="Consecutive errors of a model (it did not "
                                  "answer) that take it out of the choice (circuit open)")
    breaker_reset_seconds: float = Field(gt=0, description="Open circuit tried again after")

    @property
    def models(self) -> list[str]:
        """The models the router may choose (the keys of ``cost``)."""
        return sorted(self.cost)


class PatternPolicy(Strict):
    bucket_seconds: int = Field(gt=0, description="Width of one usage bucket")
    peak_sigma: float = Field(gt=0, description="An hour is a peak above mean + sigma·sd")
    burst_mad: float = Field(gt=0, description="A bucket is a burst above median + k·MAD")
    anomaly_mad: float = Field(gt=0, description="A value is anomalous beyond k·MAD of its "
                               "hour-of-week baseline")
    min_history_buckets: int = Field(ge=2, description="Below: no pattern is stated")
    seasonality_min_acf: float = Field(gt=0, lt=1, description="Autocorrelation at the daily or "
                                       "weekly lag above which that seasonality is stated")
    weekly_margin: float = Field(ge=0, lt=1, description="Weekly seasonality is stated when "
                                 "the weekly-lag autocorrelation exceeds the daily one by this")
    holdout_fraction: float = Field(gt=0, lt=1, description="Newest share of sequences held "
                                    "out to measure next-action accuracy")
    history_seconds: float = Field(gt=0, description="History the live analysis reads")
    max_decisions: int = Field(ge=1, description="Newest graph decisions read for sequences")
    series: dict[str, Literal["sum", "mean"]] = Field(description="Telemetry series analysed "
                                                      "live and how each is bucketed")


SECTIONS = {
    "learning_optimizer": OptimizerPolicy,
    "learning_routing": RoutingPolicy,
    "learning_patterns": PatternPolicy,
}
