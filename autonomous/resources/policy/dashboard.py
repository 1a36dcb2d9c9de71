"""Dashboard pages policy: live-stream timings, the stream token's lifetime and how many rows
each panel shows. Values in ``policies/dashboard.yaml``; every field is required."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "DashboardPolicy", "PanelRows"]


class PanelRows(Strict):
    alerts: int = Field(ge=1, le=1000, description="Active alerts listed")
    decisions: int = Field(ge=1, le=200, description="Latest decisions listed (with their why)")
    healing: int = Field(ge=1, le=200, description="Latest healing incidents listed")
    rollouts: int = Field(ge=1, le=200, description="Latest rollout events listed")
    mode_history: int = Field(ge=1, le=20, description="Governance mode switches listed")


class DashboardPolicy(Strict):
    stream_lifetime_seconds: float = Field(gt=0, le=3600, description="An event stream ends "
                                           "after this long and the browser reconnects (a "
                                           "held-open stream never blocks shutdown)")
    keepalive_seconds: float = Field(gt=0, le=300, description="Comment line sent when "
                                     "nothing else was for this long")
    alert_watch_seconds: float = Field(gt=0, le=60, description="How often the stream compares "
                                       "the active alerts (a firing publishes no bus event)")
    retry_ms: int = Field(ge=100, le=60000, description="Reconnect delay told to the browser")
    stream_token_seconds: float = Field(gt=0, le=86400, description="Lifetime of the signed "
                                        "query token an EventSource uses when reads need the "
                                        "bearer token (EventSource cannot send headers)")
    chart_points: int = Field(ge=2, le=5000, description="Most points drawn per chart series "
                              "(evenly thinned beyond)")
    resources_refresh_seconds: float = Field(gt=0, le=3600, description="How often the "
                                             "Health page's resources panel reads the latest "
                                             "system sample again")
    rows: PanelRows


SECTIONS = {"dashboard": DashboardPolicy}
