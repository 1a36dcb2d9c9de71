"""``Service``: a process the operator supervises."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from autonomous.resources.base import Strict

__all__ = [
    "KINDS",
    "DependencySpec",
    "FallbackSpec",
    "FeaturesSpec",
    "HealthSpec",
    "ResourceLimits",
    "RestartSpec",
    "ServiceSpec",
    "StandbySpec",
    "TrafficSpec",
]


class HealthSpec(Strict):
    path: str = Field("/health", description="Liveness probe path (HTTP GET, 2xx = alive)")
    readiness_path: str | None = Field(None, description="Readiness path; default: liveness path")
    period_seconds: float = Field(2.0, gt=0, description="Seconds between probes")
    timeout_seconds: float = Field(1.0, gt=0, description="Probe timeout")
    failure_threshold: int = Field(3, ge=1, description="Consecutive failures before failing")
    success_threshold: int = Field(1, ge=1, description="Consecutive successes before passing")
    startup_grace_seconds: float = Field(10.0, ge=0, description="Failures ignored after start")

    @field_validator("path", "readiness_path")
    @classmethod
    def _abs(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/' (for example '/health')")
        return v


class RestartSpec(Strict):
    policy: Literal["always", "on-failure", "never"] = Field(
        "always", description="When to restart a process that exited")


class DependencySpec(Strict):
    name: str = Field(description="Dependency name (for example 'llm', 'db', 'cache')")
    type: Literal["http", "tcp"] = Field(description="How to check it")
    url: str | None = Field(None, description="For http: URL to GET (2xx = up)")
    host: str | None = Field(None, description="For tcp: host")
    port: int | None = Field(None, ge=1, le=65535, description="For tcp: port")
    timeout_seconds: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _target(self) -> DependencySpec:
        if self.type == "http" and not self.url:
            raise ValueError("type 'http' needs 'url'")
        if self.type == "tcp" and (not self.host or not self.port):
            raise ValueError("type 'tcp' needs 'host' and 'port'")
        return self


class FallbackSpec(Strict):
    service: str | None = Field(None, description="Declared service to fail over to")
    url: str | None = Field(None, description="Endpoint to fail over to")


class FeaturesSpec(Strict):
    endpoint: str = Field("/features", description="Feature-flag endpoint the service honours")
    core: list[str] = Field(default_factory=list, description="Features kept in degraded mode")


class ResourceLimits(Strict):
    memory_mb: float | None = Field(None, gt=0, description="RSS above this is a RESOURCE fault")


class TrafficSpec(Strict):
    port: int = Field(ge=1, le=65535, description="Stable front port the gateway serves; the "
                      "versions run on backend ports the operator assigns")
    device_paths: list[str] = Field(default_factory=list, description="Device/actuating path "
                                    "prefixes (motor, camera): never split, switched at FULL")

    @field_validator("device_paths")
    @classmethod
    def _abs_paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"{p!r} must start with '/' (for example '/motor')")
        return v


class StandbySpec(Strict):
    instances: int = Field(1, ge=1, le=4, description="Warm standby instances kept ready "
                           "behind the gateway (each on its own backend port the operator "
                           "assigns); a crash of the active instance loses no request")


class ServiceSpec(Strict):
    command: list[str] = Field(min_length=1, description="argv list; never a shell string. "
                               "'{python}' expands to the operator's interpreter")
    cwd: str | None = Field(None, description="Working directory, relative to the root")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment")
    port: int | None = Field(None, ge=1, le=65535, description="Port the service listens on")
    host: str = Field("127.0.0.1", description="Host the service listens on")
    version: str = Field("0", description="Version label; a change restarts the service")
    core: bool = Field(False, description="Kept running in survival mode")
    depends_on: list[str] = Field(default_factory=list, description="Services started first")
    health: HealthSpec | None = Field(default_factory=HealthSpec)
    restart: RestartSpec = Field(default_factory=RestartSpec)
    stop_grace_seconds: float = Field(5.0, ge=0, description="SIGTERM → SIGKILL delay")
    dependencies: list[DependencySpec] = Field(default_factory=list,
                                               description="External dependencies to check")
    fallback: FallbackSpec | None = None
    features: FeaturesSpec | None = None
    resources: ResourceLimits = Field(default_factory=ResourceLimits)
    traffic: TrafficSpec | None = Field(None, description="Served through the gateway on a "
                                        "stable front port; absent: served directly")
    standby: StandbySpec | None = Field(None, description="Warm standby instances (needs "
                                        "'traffic' and 'port')")

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, v: object) -> object:
        if isinstance(v, str):
            raise ValueError("must be an argv list such as ['python', '-m', 'app'], "
                             "not a shell string")
        return v

    @field_validator("standby")
    @classmethod
    def _standby_needs_traffic(cls, v: StandbySpec | None,
                               info: ValidationInfo) -> StandbySpec | None:
        # declared after 'port' and 'traffic': both are validated (in info.data) by now
        if v is not None and (info.data.get("traffic") is None or info.data.get("port") is None):
            raise ValueError("standby needs 'traffic' (a gateway front whose load balancer "
                             "lists the standby instances) and 'port'")
        return v


KINDS = {"Service": ServiceSpec}
