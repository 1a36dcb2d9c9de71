"""Learning policy: proposal bounds (growth), feedback statistics, alert-threshold tuning
(the Neural Router's section is ``learning_routing`` in learning_tuning). Values in ``policies/learning.yaml``; every field is required."""

from __future__ import annotations

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "AlertTuningPolicy", "Bounds", "FeedbackPolicy", "LearningPolicy",
           "ProposalPolicy"]


class ProposalPolicy(Strict):
    max_step_fraction: float = Field(gt=0, le=0.25, description="Largest relative step of one "
                                     "change applied in growth (the issue caps it at 25 %)")
    max_baking: int = Field(ge=1, description="At most this many changes baking at once")
    bake_seconds: float = Field(gt=0, description="Bake window after a change is applied; one "
                                "change per parameter per window")
    cooldown_cycles: int = Field(ge=0, description="A rejected or reverted change to a parameter "
                                 "is not proposed again for this many learning cycles")
    bake_z: float = Field(gt=0, description="z of the Wilson interval that judges a bake: "
                          "reverted only when the interval of the bad rate since the change "
                          "lies wholly above the rate before it")
    bake_min_samples: int = Field(ge=1, description="Feedback since the change needed to judge "
                                  "a bake; fewer keeps the change (no evidence of harm)")


class Bounds(Strict):
    low: float = Field(description="Lowest value a learned change may set")
    high: float = Field(description="Highest value a learned change may set")

    @model_validator(mode="after")
    def _order(self) -> Bounds:
        if self.low > self.high:
            raise ValueError("low must be ≤ high")
        return self


class FeedbackPolicy(Strict):
    z: float = Field(gt=0, description="z of the Wilson interval per feedback area")
    baseline_bad_rate: float = Field(ge=0, le=1, description="An area is flagged worse only "
                                     "when its interval of the bad rate lies above this")
    min_samples: int = Field(ge=1, description="Feedback needed before an area is judged")
    action_items: dict[str, str] = Field(description="Area prefix (before ':') → 'file#rule' "
                                         "the action item for a worse area points at")


class AlertTuningPolicy(Strict):
    target_precision: float = Field(gt=0, le=1, description="Precision (labelled true / all "
                                    "labelled) the alert thresholds are tuned toward")
    min_labels: int = Field(ge=1, description="Labelled firings of a rule needed to propose")
    min_recall: float = Field(ge=0, le=1, description="Share of true-positive firings a new "
                              "threshold must still catch (offline replay of the labels)")
    rules: dict[str, Bounds] = Field(description="Tunable alert rules (by name) and the bounds "
                                     "of their threshold value")


class LearningPolicy(Strict):
    proposals: ProposalPolicy
    feedback: FeedbackPolicy
    alert_tuning: AlertTuningPolicy


SECTIONS = {"learning": LearningPolicy}
