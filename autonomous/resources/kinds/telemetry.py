"""``Dashboard``: panels of metric queries, tables, alert lists, log searches and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autonomous.resources.base import Strict

__all__ = ["KINDS", "PANEL_TYPES", "TABLE_SOURCES", "DashboardSpec", "PanelSpec"]

PANEL_TYPES = ("timeseries", "stat", "table", "alerts", "logs", "traces")
TABLE_SOURCES = ("services", "errors", "slow_traces", "series", "notifications")


class PanelSpec(Strict):
    title: str = Field(description="Panel title")
    type: Literal["timeseries", "stat", "table", "alerts", "logs", "traces"]
    metric: str | None = Field(None, description="timeseries/stat: metric name")
    labels: dict[str, str] = Field(default_factory=dict, description="Series label filter")
    by_series: bool = Field(True, description="timeseries: one line per series (else merged)")
    aggregation: Literal["avg", "min", "max", "sum", "count", "rate", "p50", "p95", "p99",
                         "last"] = Field("last", description="stat: how the range is reduced")
    resolution: Literal["auto", "raw", "1m", "1h"] = Field("auto", description="Query resolution")
    unit: str = Field("", description="Display unit")
    source: Literal["services", "errors", "slow_traces", "series", "notifications"] | None = \
        Field(None, description="table: which table")
    match: dict[str, str] = Field(default_factory=dict, description="alerts: label matchers")
    query: str | None = Field(None, description="logs: full-text query")
    level: str | None = Field(None, description="logs: lowest level")
    limit: int = Field(20, ge=1, le=1000, description="Rows for tables, logs, traces, alerts")

    @model_validator(mode="after")
    def _needs(self) -> PanelSpec:
        if self.type in ("timeseries", "stat") and not self.metric:
            raise ValueError(f"panel {self.title!r} of type {self.type!r} needs 'metric'")
        if self.type == "table" and self.source is None:
            raise ValueError(f"table panel {self.title!r} needs 'source' "
                             f"(one of {', '.join(TABLE_SOURCES)})")
        return self


class DashboardSpec(Strict):
    title: str = Field(description="Dashboard title")
    description: str = Field("", description="What it shows")
    range_seconds: float = Field(3600, gt=0, description="Default time range")
    refresh_seconds: float = Field(15, gt=0, description="Suggested refresh period")
    panels: list[PanelSpec] = Field(min_length=1)


KINDS = {"Dashboard": DashboardSpec}
