"""The governance mode (``governed``, ``growth``, ``emergency_stop``) and the action gate.

The mode is persisted in the store and every switch is logged with who asked and why. The
effective policy is the one the generation in force computed for the mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.errors import Problem, ValidationFailed
from autonomous.core.events import EventBus
from autonomous.resources.kinds.policyset import GOVERNANCE_MODES
from autonomous.store import Store

__all__ = ["DEFAULT_MODE", "MODES", "Governance"]

MODES = GOVERNANCE_MODES
DEFAULT_MODE = "governed"
_KEY = "governance.mode"


class Governance:
    def __init__(self, store: Store, bus: EventBus, clock: Clock,
                 policies: Callable[[], dict[str, dict[str, Any]] | None]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self._policies = policies
        self._mode: str | None = None  # read through on first use; set_mode keeps it current

    @property
    def mode(self) -> str:
        """The mode in force (persisted; read from the store once, then kept in memory: every
        switch goes through ``set_mode``)."""
        if self._mode is None:
            self._mode = self.store.kv_get(_KEY, DEFAULT_MODE)
        return self._mode

    def set_mode(self, mode: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        if mode not in MODES:
            raise ValidationFailed([Problem("request", 0, "mode",
                                            f"{mode!r} is not one of {', '.join(MODES)}")])
        old = self.mode
        with self.store.transaction():
            self.store.kv_set(_KEY, mode)
            self.store.execute("INSERT INTO governance_log(ts, old_mode, new_mode, actor, reason) "
                               "VALUES (?, ?, ?, ?, ?)", (self.clock.now(), old, mode, actor,
                                                          reason))
        self._mode = mode
        if old != mode:
            self.bus.publish("governance.mode", old=old, new=mode, actor=actor, reason=reason)
        return {"mode": mode, "previous": old}

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM governance_log ORDER BY id DESC LIMIT ?", (limit,))
        return [{"ts": iso(r["ts"]), "old_mode": r["old_mode"], "new_mode": r["new_mode"],
                 "actor": r["actor"], "reason": r["reason"]} for r in rows]

    def policy(self, mode: str | None = None) -> dict[str, Any]:
        """The effective policy for ``mode`` (default: the mode in force)."""
        policies = self._policies()
        if not policies:
            raise LookupError("no desired-state generation is in force yet")
        return policies[mode or self.mode]

    def action_mode(self, kind: str, mode: str | None = None) -> str:
        """``enforce``, ``dry_run`` or ``require_approval`` for an action kind."""
        actions = self.policy(mode)["governance"]["actions"]
        if kind not in actions:
            raise KeyError(f"action kind {kind!r} is not in policy governance.actions")
        return actions[kind]
