"""Health monitor policy: thresholds, anomaly detection, prediction."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["HealthThresholds", "HealthPolicy", "SECTIONS"]


class HealthThresholds(Strict):
    cpu_percent: float = Field(gt=0, le=100, description="Healthy below this CPU use")
    ram_percent: float = Field(gt=0, le=100, description="Healthy below this RAM use")
    disk_percent: float = Field(gt=0, le=100, description="Healthy below this disk use")


class HealthPolicy(Strict):
    thresholds: HealthThresholds
    anomaly_sigma: float = Field(gt=0, description="z-score beyond which a sample is anomalous")


SECTIONS = {"health": HealthPolicy}
