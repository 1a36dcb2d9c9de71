"""The features controller: the one owner of every service's feature flags.

Nothing else calls a feature endpoint (``spec.features.endpoint``). Others ask with standing
``degrade`` intents (``autonomous.feature_flags``): self-healing's DEGRADE, survival mode.

desired: per Service declaring ``spec.features`` and a port — its endpoint, its core features
(never turned off) and the active ``degrade`` intents on it (each: the features it wants off,
or every non-core one).
observe: the flags the owner holds off (persisted, store key ``feature_flags``) and, only for
a service some intent or held flag concerns, ``GET`` of its endpoint (nothing asked, nothing
held: no request at all, so an idle operator costs nothing here).
diff (pure, :func:`plan_service`): one ``degrade`` action per service whose flags differ:
off what an intent wants off and is on (a service that restarted comes back with every
feature on: turned off again), on what the owner holds off that no intent wants off any more.
A feature the owner did not turn off (off by the service's own configuration) is never
turned on.
act: ``PUT {"features": {...}}`` then ``GET`` to verify; the features to hold are persisted
before the ``PUT`` (a crash in between forgets nothing that is off).
report: per service the flags seen, the intents applied (all their features off), what is
left to turn on; notes each intent with where it stands; expires intents on services that no
longer declare features; status ``Service/<name>`` condition ``FeaturesDegraded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from autonomous.context import OperatorContext
from autonomous.core.conditions import HealthStatus, SyncStatus
from autonomous.feature_flags import KIND, KV_KEY
from autonomous.intents import IntentStore
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "DegradeRequest", "DesiredFlags", "FeaturesController",
           "ObservedFlags", "plan_service", "wanted_off"]


@dataclass(frozen=True)
class DegradeRequest:
    """An active ``degrade`` intent as the pure diff sees it."""

    intent: str
    requester: str
    features: tuple[str, ...] | None  # None: every non-core feature
    reason: str = ""
    decision: str | None = None


@dataclass(frozen=True)
class DesiredFlags:
    name: str
    url: str
    core: tuple[str, ...]
    requests: tuple[DegradeRequest, ...] = ()


@dataclass(frozen=True)
class ObservedFlags:
    flags: Mapping[str, bool] | None  # None: not read (nothing asked) or unreachable
    error: str | None = None
    held: tuple[str, ...] = ()  # turned off by the owner
    at: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)


def wanted_off(d: DesiredFlags, flags: Mapping[str, bool]) -> dict[str, list[str]]:
    """Pure: feature → the intents that want it off (core and unknown features never)."""
    out: dict[str, list[str]] = {}
    for r in d.requests:
        names = r.features if r.features is not None else tuple(flags)
        for f in names:
            if f in flags and f not in d.core:
                out.setdefault(f, []).append(r.intent)
    return {f: out[f] for f in sorted(out)}


def plan_service(d: DesiredFlags, o: ObservedFlags) -> Action | None:
    """Pure: the one ``degrade`` action that makes the service's flags what is desired."""
    if o.flags is None:
        return None
    flags = dict(o.flags)
    want = wanted_off(d, flags)
    off = {f: False for f in want if flags.get(f)}
    on = {f: True for f in o.held if f not in want and flags.get(f) is False}
    if not off and not on:
        return None
    by = sorted({r.requester for r in d.requests if any(r.intent in want[f] for f in off)})
    parts = []
    if off:
        parts.append(f"off {', '.join(sorted(off))} (degrade asked by {', '.join(by)})")
    if on:
        parts.append(f"back on {', '.join(sorted(on))} (no degrade intent wants it off)")
    cause = next((r.decision for r in d.requests if r.decision), None)
    return Action("degrade", f"Service/{d.name}", "; ".join(parts),
                  {"service": d.name, "url": d.url, "set": {**off, **on}},
                  {"flags": flags, "held": list(o.held), "caused_by": cause,
                   "intents": [r.intent for r in d.requests]})


class FeaturesController(Controller):
    name = "features"
    subsystem = "services"  # enabled and paced with the services it serves
    order = 15
    watches = ("intent.requested", "intent.released", "service.ready", "service.healthy")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.intents = IntentStore(ctx.store, ctx.clock, ctx.bus)
        self._client: httpx.AsyncClient | None = None

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    def _timeout(self) -> float:
        return float(self.ctx.policy()["features"]["http_timeout_seconds"])

    def _state(self) -> dict[str, dict[str, Any]]:
        return dict(self.ctx.store.kv_get(KV_KEY) or {})

    def desired(self) -> dict[str, DesiredFlags]:
        gen = self.ctx.desired.current
        if gen is None:
            return {}
        reqs: dict[str, list[DegradeRequest]] = {}
        for it in self.intents.active(kinds=(KIND,)):
            feats = it.params.get("features")
            reqs.setdefault(it.service, []).append(DegradeRequest(
                it.id, it.requester, tuple(str(f) for f in feats) if feats is not None else None,
                it.reason, it.decision))
        out = {}
        for name, spec in sorted(gen.services.items()):
            if spec.features is None or spec.port is None:
                continue
            out[name] = DesiredFlags(name, f"http://{spec.host}:{spec.port}"
                                           f"{spec.features.endpoint}",
                                     tuple(spec.features.core), tuple(reqs.get(name, ())))
        return out

    async def observe(self) -> dict[str, ObservedFlags]:
        state, now = self._state(), self.ctx.clock.now()
        out = {}
        for name, d in self.desired().items():
            held = tuple((state.get(name) or {}).get("held") or ())
            if not d.requests and not held:
                out[name] = ObservedFlags(None, None, held, now)
                continue
            try:
                flags = await self._get(d.url)
            except (httpx.HTTPError, ValueError) as exc:
                out[name] = ObservedFlags(None, f"feature endpoint {d.url}: "
                                                f"{type(exc).__name__}: {exc}", held, now)
                continue
            out[name] = ObservedFlags(flags, None, held, now)
        return out

    @staticmethod
    def diff(desired: Any, observed: Any) -> tuple[Action, ...]:
        """Pure: per service the flag changes its degrade intents and held flags call for."""
        acts = []
        for name in sorted(desired):
            o = observed.get(name)
            a = plan_service(desired[name], o) if o is not None else None
            if a is not None:
                acts.append(a)
        return tuple(acts)

    async def act(self, action: Action) -> Outcome:
        p = action.params
        name, url, want = str(p["service"]), str(p["url"]), dict(p["set"])
        self._hold(name, add=tuple(f for f, v in want.items() if not v))  # before the PUT
        try:
            r = await self._http().put(url, json={"features": want}, timeout=self._timeout())
            if r.status_code >= 300:
                return Outcome(action, False, f"feature endpoint {url}: PUT answered HTTP "
                               f"{r.status_code}: {r.text[:200]}")
            after = await self._get(url)
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(action, False, f"feature endpoint {url}: {type(exc).__name__}: {exc}")
        self._hold(name, drop=tuple(f for f, v in want.items() if v and after.get(f) is True))
        wrong = sorted(f for f, v in want.items() if after.get(f) is not v)
        if wrong:
            return Outcome(action, False, f"feature endpoint {url}: still not as asked after "
                           f"the PUT: {', '.join(wrong)}", details={"flags": after})
        return Outcome(action, True, ", ".join(f"{f} {'on' if v else 'off'}"
                                               for f, v in sorted(want.items())),
                       details={"flags": after})

    def _hold(self, name: str, *, add: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
        state = self._state()
        st = dict(state.get(name) or {})
        held = (set(st.get("held") or ()) | set(add)) - set(drop)
        st["held"] = sorted(held)
        state[name] = st
        self.ctx.store.kv_set(KV_KEY, state)

    async def _get(self, url: str) -> dict[str, bool]:
        r = await self._http().get(url, timeout=self._timeout())
        if r.status_code != 200:
            raise ValueError(f"GET answered HTTP {r.status_code}")
        body = r.json()
        flags = body.get("features", body) if isinstance(body, dict) else None
        if not isinstance(flags, dict):
            raise ValueError(f"GET answered {str(body)[:100]}, not a feature map")
        return {str(k): bool(v) for k, v in flags.items()}

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:
        failed = {o.action.params.get("service"): o.message for o in outcomes if not o.ok}
        prev, state = self._state(), {}
        now = self.ctx.clock.now()
        for name, d in desired.items():
            o: ObservedFlags = observed.get(name) or ObservedFlags(None)
            before = prev.get(name) or {}
            held = set(o.held)
            applied: dict[str, list[str]] = {}
            restoring: list[str] = []
            if o.flags is not None:
                want = wanted_off(d, o.flags)
                # held but on and wanted by none (e.g. the service restarted): nothing to undo;
                # gone from the service: forgotten
                held = {f for f in held if f in o.flags and (f in want or not o.flags[f])}
                restoring = sorted(f for f in held if f not in want)
                for r in d.requests:
                    mine = sorted(f for f, ids in want.items() if r.intent in ids)
                    if all(not o.flags[f] for f in mine):
                        applied[r.intent] = mine
            else:
                # not read: what was applied stays as last seen (the service may be down)
                applied = {i: v for i, v in (before.get("applied") or {}).items()
                           if i in {r.intent for r in d.requests}}
                restoring = sorted(f for f in held
                                   if not any(r.features is None or f in r.features
                                              for r in d.requests))
            error = failed.get(name) or o.error
            state[name] = {"flags": dict(o.flags) if o.flags is not None else before.get("flags"),
                           "error": error, "at": now, "held": sorted(held),
                           "intents": [r.intent for r in d.requests], "applied": applied,
                           "restoring": restoring}
            self._note(d, applied, error)
            self._status(name, d, state[name], now)
        if _content(state) != _content(prev):
            self.ctx.store.kv_set(KV_KEY, state)  # unchanged: no write (idle costs nothing)
        for it in self.intents.active(kinds=(KIND,)):
            if it.service not in desired:
                self.intents.expire(it.id, f"{it.service} declares no spec.features (or is "
                                           "no longer a desired service)")

    def _note(self, d: DesiredFlags, applied: dict[str, list[str]], error: str | None) -> None:
        for r in d.requests:
            got = applied.get(r.intent)
            text = (f"applied: {', '.join(got) or 'no non-core feature'} off" if got is not None
                    else f"not applied: {error}" if error else None)
            if text is None:
                continue
            cur = self.intents.get(r.intent)
            if cur is not None and cur.outcome != text:
                self.intents.note(r.intent, text)

    def _status(self, name: str, d: DesiredFlags, st: dict[str, Any], now: float) -> None:
        res = self.ctx.status.resource(self.name, "Service", name)
        off = sorted({f for v in st["applied"].values() for f in v})
        pending = [r.intent for r in d.requests if r.intent not in st["applied"]]
        res.sync = SyncStatus.OUT_OF_SYNC if (pending or st["restoring"]) else SyncStatus.SYNCED
        res.health = HealthStatus.DEGRADED if off else HealthStatus.HEALTHY
        res.details = {k: st[k] for k in ("flags", "held", "applied", "restoring", "error")}
        res.set_condition("FeaturesDegraded", bool(off), "DegradeIntents" if off else "AllOn",
                          (f"off for {', '.join(sorted({r.requester for r in d.requests}))}: "
                           f"{', '.join(off)}") if off else "no degrade intent applies", now)


def _content(state: Mapping[str, Any]) -> dict[str, Any]:
    return {n: {k: v for k, v in st.items() if k != "at"} for n, st in state.items()
            if isinstance(st, Mapping)}


CONTROLLERS = [FeaturesController]
