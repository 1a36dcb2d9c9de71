"""Retention policy for the operator's own growing tables (telemetry's data has its own, in
``OperatorConfig`` ``telemetry.retention``): the knowledge graph, health reports and
anomalies, decided approvals, old generations, finished rollouts and closed update proposals."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "RetentionPolicy"]


class RetentionPolicy(Strict):
    interval_seconds: float = Field(gt=0, description="How often the prune runs")
    graph_days: float = Field(gt=0, description="Knowledge-graph chains whose newest node was "
                              "last seen longer ago than this are deleted, with their edges")
    health_reports_days: float = Field(gt=0, description="Health minute reports kept this long")
    health_anomalies_days: float = Field(gt=0, description="Ended anomalies kept this long "
                                         "after they were last seen")
    approvals_days: float = Field(gt=0, description="Approvals no longer pending (approved, "
                                  "executed, rejected, expired, stale) kept this long")
    generations_keep: int = Field(ge=1, description="Newest desired-state generations kept; "
                                  "older ones are deleted (the one in force always stays)")
    learning_feedback_days: float = Field(gt=0, description="Learning feedback (alert labels, "
                                          "ratings, route outcomes) kept this long")
    route_decisions_days: float = Field(gt=0, description="Logged Neural Router decisions "
                                        "(with their propensities and outcomes) kept this long")
    evolution_rollouts_days: float = Field(
        90, gt=0, description="Finished rollouts (committed, rolled back) with their events "
        "kept this long after their last change; the quarantine stays")
    evolution_proposals_days: float = Field(
        90, gt=0, description="Closed update proposals kept this long after their last change")


SECTIONS = {"retention": RetentionPolicy}
