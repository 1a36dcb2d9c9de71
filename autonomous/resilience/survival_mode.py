"""Survival mode: keep only the core, persistently, and put everything back on exit.

Entering (by the API, by the ``emergency_stop`` governance mode, or automatically on severe
resource pressure):

1. persist ``store.kv_set("survival", {"active": true, "reason", "since", "disabled_features",
   "stopped_services", "kept_services", ...})`` first, so the services controller keeps only
   core services running from its next pass on;
2. stop the running non-core services through the services facade (``stop(name, reason)``);
3. turn off every non-core feature of the services kept running: ``PUT <feature endpoint>``
   with ``{"features": {name: false}}`` (core features are ``ServiceSpec.features.core``);
4. publish ``survival.entered``; the profile's operator features (evolution, optimizations,
   learning) are reported by ``get_disabled_features`` so those subsystems freeze.

Exiting re-enables the features it turned off, persists ``active: false``, starts the
services it stopped and publishes ``survival.exited``. The state survives restarts: a new
instance reads it from the store, and exit restores from what was persisted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus

__all__ = ["KV_KEY", "SurvivalMode"]

KV_KEY = "survival"


class SurvivalMode:
    """``services()`` returns the services facade or None; ``specs()`` the declared services;
    ``profile()`` the SurvivalProfile spec in force as a dict; ``feature_timeout()`` seconds."""

    def __init__(self, *, store: Any, bus: EventBus, clock: Clock,
                 services: Callable[[], Any], specs: Callable[[], dict[str, Any]],
                 profile: Callable[[], dict[str, Any]],
                 feature_timeout: Callable[[], float]) -> None:
        self.store, self.bus, self.clock = store, bus, clock
        self._services, self._specs = services, specs
        self._profile, self._timeout = profile, feature_timeout

    # -- queries ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        s = dict(self.store.kv_get(KV_KEY) or {"active": False})
        s.setdefault("active", False)
        s["since_iso"] = iso(s.get("since"))
        return s

    def is_in_survival(self) -> bool:
        return bool((self.store.kv_get(KV_KEY) or {}).get("active"))

    def get_disabled_features(self) -> list[str]:
        """Operator features (``evolution``…) and ``service/feature`` pairs off right now."""
        s = self.store.kv_get(KV_KEY) or {}
        return list(s.get("disabled_features", [])) if s.get("active") else []

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
            "errors": []}
        self.store.kv_set(KV_KEY, state)
        await self._stop_services(to_stop, reason, state)
        if profile["disable_service_features"]:
            await self._features_off(kept, specs, state)
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

    async def _features_off(self, kept: list[str], specs: dict[str, Any], state: dict) -> None:
        async with httpx.AsyncClient(timeout=self._timeout()) as client:
            for name in kept:
                spec = specs[name]
                if spec.features is None or spec.port is None:
                    continue
                url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
                try:
                    current = _flags((await client.get(url)).raise_for_status().json())
                    off = sorted(f for f, on in current.items()
                                 if on and f not in spec.features.core)
                    if off:
                        r = await client.put(url, json={"features": {f: False for f in off}})
                        r.raise_for_status()
                except (httpx.HTTPError, ValueError, TypeError) as exc:
                    state["errors"].append(f"features of {name} ({url}): "
                                           f"{type(exc).__name__}: {exc}")
                    continue
                state["service_features"][name] = off
                state["disabled_features"] += [f"{name}/{f}" for f in off]

    async def feature_drift(self) -> dict[str, list[str]]:
        """In survival: non-core features that are on again in kept services (a service that
        restarted comes back with every feature on). Unreachable services are skipped."""
        state = self.store.kv_get(KV_KEY) or {}
        if not state.get("active") or not self._profile()["disable_service_features"]:
            return {}
        specs, drift = self._specs(), {}
        async with httpx.AsyncClient(timeout=self._timeout()) as client:
            for name in state.get("kept_services", []):
                spec = specs.get(name)
                if spec is None or spec.features is None or spec.port is None:
                    continue
                url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
                try:
                    current = _flags((await client.get(url)).raise_for_status().json())
                except (httpx.HTTPError, ValueError, TypeError):
                    continue
                on = sorted(f for f, v in current.items() if v and f not in spec.features.core)
                if on:
                    drift[name] = on
        return drift

    async def reapply_features(self, drift: dict[str, list[str]]) -> dict[str, Any]:
        """Turn the drifted features off again and remember them for exit."""
        state = self.state()
        state.pop("since_iso", None)
        specs = self._specs()
        async with httpx.AsyncClient(timeout=self._timeout()) as client:
            for name, feats in drift.items():
                spec = specs[name]
                url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
                r = await client.put(url, json={"features": {f: False for f in feats}})
                r.raise_for_status()
                known = state["service_features"].setdefault(name, [])
                for f in feats:
                    if f not in known:
                        known.append(f)
                        state["disabled_features"].append(f"{name}/{f}")
        self.store.kv_set(KV_KEY, state)
        return state

    # -- exit ------------------------------------------------------------------------------
    async def exit_survival_mode(self, reason: str, *, actor: str = "operator",
                                 source: str = "api") -> dict[str, Any]:
        """Leave (idempotent): features back on, persisted inactive, stopped services started."""
        if not self.is_in_survival():
            return self.state()
        state = self.state()
        errors: list[str] = []
        await self._features_on(state.get("service_features", {}), errors)
        done = {**state, "active": False, "exited_at": self.clock.now(), "exit_reason": reason,
                "exit_errors": errors}
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

    async def _features_on(self, per_service: dict[str, list[str]], errors: list[str]) -> None:
        specs = self._specs()
        async with httpx.AsyncClient(timeout=self._timeout()) as client:
            for name, feats in per_service.items():
                spec = specs.get(name)
                if not feats or spec is None or spec.features is None or spec.port is None:
                    continue
                url = f"http://{spec.host}:{spec.port}{spec.features.endpoint}"
                try:
                    r = await client.put(url, json={"features": {f: True for f in feats}})
                    r.raise_for_status()
                except httpx.HTTPError as exc:
                    errors.append(f"features of {name} ({url}): {type(exc).__name__}: {exc}")

    def _log(self, event: str, reason: str, actor: str, details: dict[str, Any]) -> None:
        self.store.execute("INSERT INTO survival_log(ts, event, reason, actor, details) "
                           "VALUES (?, ?, ?, ?, ?)", (self.clock.now(), event, reason, actor,
                                                     json.dumps(details, default=str)))

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM survival_log ORDER BY id DESC LIMIT ?", (limit,))
        return [{"ts": iso(r["ts"]), "event": r["event"], "reason": r["reason"],
                 "actor": r["actor"]} for r in rows]


def _flags(body: Any) -> dict[str, bool]:
    """``{"features": {name: bool}}`` or a plain ``{name: bool}`` → ``{name: bool}``."""
    if isinstance(body, dict) and isinstance(body.get("features"), dict):
        body = body["features"]
    if not isinstance(body, dict):
        raise TypeError(f"feature endpoint answered {type(body).__name__}, expected an object")
    return {str(k): bool(v) for k, v in body.items()}
