"""Survival mode: keep only the core, persistently, and put everything back on exit.

Entering (by the API, by the ``emergency_stop`` governance mode, or automatically on severe
resource pressure):

1. persist ``store.kv_set("survival", {"active": true, "reason", "since", "disabled_features",
   "stopped_services", "kept_services", ...})`` first, so the services controller keeps only
   core services running from its next pass on;
2. stop the running non-core services through the services facade (``stop(name, reason)``);
3. ask for every non-core feature of the services kept running to be off: a ``degrade``
   intent per service (requester ``survival``) for the one owner of feature flags
   (``controllers/features.py``), which turns them off — and off again when a kept service
   restarts with every feature on (core features are ``ServiceSpec.features.core``). Not
   waited for: the state reports, at each read, what the owner really keeps off for those
   intents (``service_features``, ``disabled_features``; ``features_pending`` for the ones
   not applied yet, with the owner's error);
4. publish ``survival.entered``; the profile's operator features (evolution, optimizations,
   learning) are reported by ``get_disabled_features`` so those subsystems freeze.

Exiting releases survival's degrade intents (the owner turns back on what it turned off),
persists ``active: false``, starts the services it stopped and publishes ``survival.exited``.
The state survives restarts: a new instance reads it from the store (the intents persist
too), and exit restores from what was persisted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus
from autonomous.feature_flags import FeatureFlags

__all__ = ["KV_KEY", "SurvivalMode"]

KV_KEY = "survival"
REQUESTER = "survival"


class SurvivalMode:
    """``services()`` returns the services facade or None; ``specs()`` the declared services;
    ``profile()`` the SurvivalProfile spec in force as a dict."""

    def __init__(self, *, store: Any, bus: EventBus, clock: Clock,
                 services: Callable[[], Any], specs: Callable[[], dict[str, Any]],
                 profile: Callable[[], dict[str, Any]]) -> None:
        self.store, self.bus, self.clock = store, bus, clock
        self._services, self._specs = services, specs
        self._profile = profile
        self.flags = FeatureFlags(store, clock, bus)

    # -- queries ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        s = self._live(dict(self.store.kv_get(KV_KEY) or {"active": False}))
        s.setdefault("active", False)
        s["since_iso"] = iso(s.get("since"))
        return s

    def is_in_survival(self) -> bool:
        return bool((self.store.kv_get(KV_KEY) or {}).get("active"))

    def get_disabled_features(self) -> list[str]:
        """Operator features (``evolution``…) and ``service/feature`` pairs off right now."""
        s = self._live(dict(self.store.kv_get(KV_KEY) or {}))
        return list(s.get("disabled_features", [])) if s.get("active") else []

    def _live(self, s: dict[str, Any]) -> dict[str, Any]:
        """While active: ``service_features`` / ``disabled_features`` as the feature-flag owner
        keeps them off for survival's intents now (a kept service that restarted has them on
        until the owner turns them off again)."""
        if not s.get("active") or "feature_intents" not in s:
            return s
        per: dict[str, list[str]] = {}
        pending: dict[str, str] = {}
        for name, intent in sorted(s["feature_intents"].items()):
            off = self.flags.off_for(intent, name)
            if off:
                per[name] = off
            elif off is None:
                err = (self.flags.service_state(name) or {}).get("error")
                pending[name] = f"not applied yet{': ' + err if err else ''}"
        ops = [f for f in s.get("disabled_features", []) if "/" not in f]
        return {**s, "service_features": per, "features_pending": pending,
                "disabled_features": ops + [f"{n}/{f}" for n, fs in per.items() for f in fs]}

    # -- enter -----------------------------------------------------------------------------
    async def enter_survival_mode(self, reason: str, *, actor: str = "operator",
                                  source: str = "api") -> dict[str, Any]:
        """Enter (idempotent: already in survival returns the state unchanged)."""
        if self.is_in_survival():
            return self.state()
        profile, specs = self._profile(), self._specs()
        kept = sorted(n for n, s in specs.items() if s.core or n in profile["core_services"])
        to_stop = self._running_non_core(specs, kept)
        state: dict[str, Any] = {
            "active": True, "reason": reason, "source": source, "actor": actor,
            "since": self.clock.now(), "kept_services": kept, "stopped_services": to_stop,
            "disabled_features": list(profile["disabled_features"]), "service_features": {},
            "feature_intents": {}, "errors": []}
        self.store.kv_set(KV_KEY, state)
        await self._stop_services(to_stop, reason, state)
        if profile["disable_service_features"]:
            self._features_off(kept, specs, state)
        self.store.kv_set(KV_KEY, state)
        self._log("entered", reason, actor, state)
        self.bus.publish("survival.entered", reason=reason, source=source, actor=actor,
                         stopped_services=to_stop, disabled_features=state["disabled_features"])
        return self.state()

    def _running_non_core(self, specs: dict[str, Any], kept: list[str]) -> list[str]:
        facade = self._services()
        observed = facade.observed() if facade is not None else None
        names = sorted(n for n in specs if n not in kept)
        if observed is None:
            return names  # not observable: all non-core (the services controller stops them)
        return [n for n in names if (observed.get(n) or {}).get("running")]

    async def _stop_services(self, names: list[str], reason: str, state: dict) -> None:
        facade = self._services()
        if facade is None:
            return
        for name in names:
            try:
                await facade.stop(name, f"survival mode: {reason}")
            except Exception as exc:  # noqa: BLE001 - recorded, the rest still stops
                state["errors"].append(f"stop {name}: {type(exc).__name__}: {exc}")

    def _features_off(self, kept: list[str], specs: dict[str, Any], state: dict) -> None:
        """A degrade intent per kept service with features. Not waited for: the owner
        reconciles it, and ``state()`` reports what it keeps off at each read."""
        for name in kept:
            spec = specs[name]
            if spec.features is None or spec.port is None:
                continue
            intent = self.flags.degrade(name, requester=REQUESTER,
                                        reason=f"survival mode: {state['reason']}")
            state["feature_intents"][name] = intent.id

    # -- exit ------------------------------------------------------------------------------
    async def exit_survival_mode(self, reason: str, *, actor: str = "operator",
                                 source: str = "api") -> dict[str, Any]:
        """Leave (idempotent): features back on, persisted inactive, stopped services started."""
        if not self.is_in_survival():
            return self.state()
        state = self.state()
        errors: list[str] = []
        released = self._features_on()
        done = {**state, "active": False, "exited_at": self.clock.now(), "exit_reason": reason,
                "exit_errors": errors, "features_released": released}
        done.pop("since_iso", None)
        self.store.kv_set(KV_KEY, done)
        facade = self._services()
        for name in state.get("stopped_services", []):
            if facade is None:
                break
            try:
                await facade.start(name, f"survival mode exited: {reason}")
            except Exception as exc:  # noqa: BLE001 - recorded; the services controller retries
                errors.append(f"start {name}: {type(exc).__name__}: {exc}")
        if errors:
            self.store.kv_set(KV_KEY, {**done, "exit_errors": errors})
        self._log("exited", reason, actor, done)
        self.bus.publish("survival.exited", reason=reason, source=source, actor=actor,
                         restarted_services=state.get("stopped_services", []))
        return self.state()

    def _features_on(self) -> list[str]:
        """Release every degrade intent of survival (the owner turns back on what it turned
        off); the services they were on."""
        names = sorted({i.service for i in self.flags.held_by(REQUESTER)})
        for name in names:
            self.flags.release(name, requester=REQUESTER, reason="survival mode exited")
        return names

    def _log(self, event: str, reason: str, actor: str, details: dict[str, Any]) -> None:
        self.store.execute("INSERT INTO survival_log(ts, event, reason, actor, details) "
                           "VALUES (?, ?, ?, ?, ?)", (self.clock.now(), event, reason, actor,
                                                     json.dumps(details, default=str)))

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM survival_log ORDER BY id DESC LIMIT ?", (limit,))
        return [{"ts": iso(r["ts"]), "event": r["event"], "reason": r["reason"],
                 "actor": r["actor"]} for r in rows]

