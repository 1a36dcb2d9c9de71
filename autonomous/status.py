"""The status board: what each controller last did and the status of each resource.

Controllers write here; the API reads. Writing status is plain data: it never triggers a
reconcile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import iso
from autonomous.core.conditions import ResourceStatus

__all__ = ["ControllerRun", "StatusBoard"]


@dataclass
class ControllerRun:
    name: str
    enabled: bool = True
    runs: int = 0
    errors: int = 0
    last_run_at: float | None = None
    last_duration_ms: float | None = None
    last_error: str | None = None
    last_actions: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, ResourceStatus] = field(default_factory=dict)
    last_decisions: dict[str, str] = field(default_factory=dict)  # resource -> graph node id

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "enabled": self.enabled, "runs": self.runs, "errors": self.errors,
            "last_run_at": iso(self.last_run_at), "last_duration_ms": self.last_duration_ms,
            "last_error": self.last_error, "last_actions": self.last_actions,
            "resources": [r.as_dict() for _, r in sorted(self.resources.items())],
        }


class StatusBoard:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.controllers: dict[str, ControllerRun] = {}

    def controller(self, name: str) -> ControllerRun:
        with self._lock:
            return self.controllers.setdefault(name, ControllerRun(name))

    def resource(self, controller: str, kind: str, name: str) -> ResourceStatus:
        run = self.controller(controller)
        key = f"{kind}/{name}"
        with self._lock:
            if key not in run.resources:
                run.resources[key] = ResourceStatus(kind, name)
            return run.resources[key]

    def drop_resource(self, controller: str, key: str) -> None:
        with self._lock:
            self.controller(controller).resources.pop(key, None)

    def resources_of(self, controller: str, kind: str) -> list[dict[str, Any]]:
        """Copies of one controller's resources of ``kind`` (as ``ResourceStatus.as_dict``)."""
        with self._lock:
            run = self.controllers.get(controller)
            return [r.as_dict() for _, r in sorted(run.resources.items())
                    if r.kind == kind] if run is not None else []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: c.as_dict() for name, c in sorted(self.controllers.items())}
