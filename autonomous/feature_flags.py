"""Feature flags as data: how a subsystem asks for a service's features to be off, and reads
what the one owner of feature flags (``controllers/features.py``) actually did.

Nothing but the owner calls a service's feature endpoint. A requester (self-healing's
DEGRADE, survival mode) writes a standing ``degrade`` intent (``autonomous.intents``) on
``Service/<name>`` — ``params.features`` lists the features it wants off, absent means every
non-core feature — and releases it when it no longer wants them off. Intents of different
requesters add up; the owner turns a feature back on once no active intent asks for it off,
and only the features it turned off itself.

The owner records, after every pass, per service (store key ``feature_flags``)::

    {"flags": {name: bool} | None,   # as last read from the endpoint (None: not read)
     "error": str | None,            # why the last read or write failed
     "at": float,                    # when (clock.now())
     "held": [feature, ...],         # turned off by the owner, to turn on when released
     "intents": [intent id, ...],    # the active degrade intents it reconciled
     "applied": {intent id: [feature, ...]},  # intents whose features are all off now
     "restoring": [feature, ...]}    # held but no intent wants them off: to turn on

so a requester reports what is really off (``off_for``) and verifies its request
(``wait_applied``, ``wait_restored``) from the owner's result, not from the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.events import EventBus
from autonomous.intents import Intent, IntentStore
from autonomous.store import Store

__all__ = ["KV_KEY", "Applied", "FeatureFlags"]

KV_KEY = "feature_flags"
KIND = "degrade"


@dataclass(frozen=True)
class Applied:
    """How a degrade intent ended up: ``off`` (the features it asked for, all off now) or
    ``error`` (why the owner could not apply it)."""

    intent: str
    off: list[str] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.off is not None


class FeatureFlags:
    """Requester side of feature flags, and the owner's recorded state."""

    def __init__(self, store: Store, clock: Clock, bus: EventBus | None = None) -> None:
        self.store = store
        self.clock = clock
        self.intents = IntentStore(store, clock, bus)

    # -- requests ---------------------------------------------------------------------------
    def degrade(self, service: str, *, requester: str, reason: str,
                features: list[str] | None = None, incident: str | None = None,
                decision: str | None = None) -> Intent:
        """Ask for ``features`` (default: every non-core one) of ``service`` to be off."""
        params: dict[str, Any] = {} if features is None else {"features": sorted(features)}
        return self.intents.request(KIND, f"Service/{service}", reason=reason,
                                    requester=requester, decision=decision,
                                    incident=incident, params=params)

    def release(self, service: str, *, requester: str, reason: str) -> int:
        """Withdraw ``requester``'s degrade intent on ``service`` (the owner restores)."""
        return self.intents.release(KIND, f"Service/{service}", reason, requester=requester)

    def held_by(self, requester: str) -> list[Intent]:
        """``requester``'s active degrade intents."""
        return [i for i in self.intents.active(kinds=(KIND,)) if i.requester == requester]

    # -- the owner's result -----------------------------------------------------------------
    def state(self) -> dict[str, dict[str, Any]]:
        return dict(self.store.kv_get(KV_KEY) or {})

    def service_state(self, service: str) -> dict[str, Any] | None:
        st = self.state().get(service)
        return dict(st) if isinstance(st, dict) else None

    def off_for(self, intent_id: str, service: str) -> list[str] | None:
        """The features the owner keeps off for this intent now; None while not applied."""
        st = self.service_state(service) or {}
        got = (st.get("applied") or {}).get(intent_id)
        return list(got) if got is not None else None

    def check_applied(self, intent: Intent) -> Applied | None:
        """One look at ``intent``: applied, failed at (after the intent was made) or settled
        meanwhile; None while the owner has not got to it."""
        cur = self.intents.get(intent.id)
        if cur is None or cur.state != "active":
            return Applied(intent.id, None, f"intent {intent.id} is "
                           f"{cur.state if cur else 'gone'}: "
                           f"{cur.outcome if cur else 'deleted'}")
        st = self.service_state(intent.service) or {}
        off = (st.get("applied") or {}).get(intent.id)
        if off is not None:
            return Applied(intent.id, list(off), None)
        if st.get("error") and intent.id in (st.get("intents") or ()):
            return Applied(intent.id, None, str(st["error"]))
        return None

    async def wait_applied(self, intent: Intent, timeout: float, poll: float) -> Applied:
        """Until the owner applied ``intent``, failed at it (after the intent was made), or
        ``timeout`` seconds of the clock passed."""
        deadline = self.clock.monotonic() + timeout
        while True:
            got = self.check_applied(intent)
            if got is not None:
                return got
            if self.clock.monotonic() >= deadline:
                return Applied(intent.id, None, "the feature-flag owner did not apply it "
                               f"within {timeout:g} s")
            await self.clock.sleep(poll)

    async def wait_restored(self, service: str, released: list[str], timeout: float,
                            poll: float) -> str | None:
        """Until the owner no longer reconciles the ``released`` intents and has nothing
        left to turn back on; None when so, else why not."""
        deadline = self.clock.monotonic() + timeout
        while True:
            st = self.service_state(service)
            if st is None:
                return None  # the owner holds nothing for this service
            pending = sorted(set(released) & set(st.get("intents") or ()))
            restoring = list(st.get("restoring") or ())
            if not pending and not restoring:
                return None
            if self.clock.monotonic() >= deadline:
                why = (f"still turning on {', '.join(restoring)}" if restoring
                       else "the owner has not reconciled the release yet")
                err = st.get("error")
                return f"{why} after {timeout:g} s" + (f" ({err})" if err else "")
            await self.clock.sleep(poll)
