"""The controller contract: observe → diff (pure) → act.

A controller reads the desired state in force (``ctx.desired.current``), observes the world,
and ``diff`` — a pure function of ``(desired, observed)`` — returns the planned actions. The
manager (``controllers.manager``) gates each action through governance (enforce / dry_run /
require_approval), applies per-resource backoff, calls ``act`` and records observation →
decision → action → outcome in the knowledge graph. ``report`` writes status; writing
status never triggers a reconcile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autonomous.context import OperatorContext

__all__ = ["Action", "Controller", "Outcome"]


@dataclass(frozen=True)
class Action:
    """One planned change. ``kind`` is a governance action kind (see policy ``governance``)."""

    kind: str
    resource: str  # "Service/nexus"
    reason: str  # the rule that led to it, e.g. "process exited (code -9), restart policy always"
    params: Mapping[str, Any] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # observed values behind it

    def key(self) -> str:
        """Stable identity of the exact action (for approvals and dedup): kind, resource, params."""
        blob = json.dumps([self.kind, self.resource, dict(self.params)], sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource": self.resource, "reason": self.reason,
                "params": dict(self.params), "evidence": dict(self.evidence), "key": self.key()}


@dataclass(frozen=True)
class Outcome:
    """What ``act`` did. ``ok=False`` with ``permanent=False`` retries after backoff."""

    action: Action
    ok: bool
    message: str
    permanent: bool = False
    retry_after: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "permanent": self.permanent,
                "retry_after": self.retry_after, "details": dict(self.details)}


class Controller(ABC):
    """Subclass per subsystem. ``name`` is the controller's name; ``subsystem`` its config key."""

    name: str = ""
    subsystem: str = ""
    watches: tuple[str, ...] = ()  # event-bus topic prefixes that trigger a reconcile
    # why ``atlas-autonomous plan`` cannot diff this controller outside the running operator
    # (what it observes lives only there); None: it observes the store and the host
    offline_plan: str | None = None

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        """Held during a reconcile; anything acting on this controller's resources from
        outside (a facade) takes it too, so two actors never race on one resource."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once before the first reconcile."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Called once on shutdown (stop what this controller started)."""

    def desired(self) -> Any:
        """The slice of the desired state in force this controller cares about."""
        return self.ctx.desired.current

    @abstractmethod
    async def observe(self) -> Any:
        """Read the world. No changes."""

    @staticmethod
    @abstractmethod
    def diff(desired: Any, observed: Any) -> tuple[Action, ...]:
        """Pure: planned actions from (desired, observed). No I/O, no clock, no randomness."""

    @abstractmethod
    async def act(self, action: Action) -> Outcome:
        """Carry out one action against the world and say how it went."""

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:  # noqa: B027
        """Write resource status (conditions) to ``ctx.status``. Never triggers a reconcile."""
