"""The services controller's side of intents (``autonomous.intents``): it owns every process,
and this is how the others' wishes about processes reach it.

* ``desired``: active ``isolate`` / ``pause`` intents keep a service stopped; a ``use_revision``
  intent blocks the revision it names (the known-good one runs); an ``isolate`` / ``pause`` /
  ``use_revision`` made for a revision that is no longer the desired one is expired — a new
  generation that touches the service releases it. The oldest active ``restart_requested``
  rides on the service's desired entry.
* ``diff`` (pure, :func:`requested_restart`): restart the process the intent names if it still
  runs; nothing if that process is already gone (the owner's own restart satisfied it).
* ``act`` / ``report``: consume what was acted on or found satisfied, expire what waited
  past ``intents.request_ttl_seconds``, prune settled rows after ``intents.keep_days``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autonomous.intents import Intent, IntentStore
from autonomous.context import OperatorContext
from controllers.base import Action, Outcome

if TYPE_CHECKING:
    from controllers.services import DesiredService, ObservedService

__all__ = ["RestartRequest", "ServiceIntents", "requested_restart"]


@dataclass(frozen=True)
class RestartRequest:
    """A ``restart_requested`` intent as the pure diff sees it."""

    intent: str
    pid: int | None
    reason: str
    requester: str
    decision: str | None


def requested_restart(d: DesiredService, o: ObservedService) -> Action | None:
    """Pure: the restart (or start) an active restart intent asks for, if still needed."""
    req = d.restart
    if req is None:
        return None
    res = f"Service/{d.name}"
    params = {"service": d.name, "spec_hash": d.hash, "intent": req.intent}
    evidence = {"intent": req.intent, "requested_pid": req.pid, "requester": req.requester,
                "caused_by": req.decision}
    why = f"restart requested by {req.requester} (intent {req.intent}): {req.reason}"
    if o.running:
        if req.pid is None or o.pid == req.pid:
            return Action("restart", res, why, params, {**evidence, "pid": o.pid})
        return None  # already replaced: report() consumes it as satisfied
    if o.stopped_by_us or o.restart_wait > 0:
        return None  # the owner's own start / crash back-off decides
    policy = d.spec.restart.policy
    if policy == "never" or (policy == "on-failure" and o.returncode == 0):
        return Action("start", res, why, params, {**evidence, "returncode": o.returncode})
    return None


class ServiceIntents:
    """Reads and settles the intents addressed to the services controller."""

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.store = IntentStore(ctx.store, ctx.clock, ctx.bus)
        self._pruned_at: float | None = None

    def _policy(self) -> Mapping[str, Any]:
        return self.ctx.policy()["intents"]

    def for_service(self, name: str, desired_hash: str, revisions: Any) -> tuple[
            str | None, RestartRequest | None]:
        """(why the service must not run, or None; the restart asked for, or None) — and
        expires the standing intents made for another revision, applies ``use_revision``."""
        why: str | None = None
        restart: RestartRequest | None = None
        for it in self.store.active(f"Service/{name}"):
            made_for = it.params.get("spec_hash")
            if it.kind in ("isolate", "pause") and made_for not in (None, desired_hash):
                self.store.expire(it.id, f"desired revision changed ({made_for} → "
                                         f"{desired_hash}): released by the new generation")
                continue
            if it.kind == "use_revision":
                self._use_revision(it, name, desired_hash, revisions)
            elif it.kind == "isolate":
                why = "isolated"
            elif it.kind == "pause" and why is None:
                why = "paused"
            elif it.kind == "restart_requested" and restart is None:
                restart = RestartRequest(it.id, it.params.get("pid"), it.reason, it.requester,
                                         it.decision)
        return why, restart

    def _use_revision(self, it: Intent, name: str, desired_hash: str, revisions: Any) -> None:
        src = it.params.get("from")
        if src != desired_hash:
            self.store.expire(it.id, f"desired revision is {desired_hash}, not {src}: nothing "
                                     "to roll back")
            return
        revisions.block(name, desired_hash)
        self.store.consume(it.id, f"revision {desired_hash} blocked; the last known-good one "
                                  "runs until the desired state changes")

    def acted(self, action: Action, outcome: Outcome) -> None:
        """``act`` carried out the action a restart intent asked for."""
        intent = action.params.get("intent")
        if intent:
            self.store.consume(str(intent), f"{action.kind}: {outcome.message}")

    def settle(self, desired: Mapping[str, DesiredService],
               observed: Mapping[str, ObservedService]) -> None:
        """Consume restart intents already satisfied, expire stale ones, prune old rows."""
        for name, d in desired.items():
            req, o = d.restart, observed.get(name)
            if req is None or o is None or not o.running or req.pid is None or o.pid == req.pid:
                continue
            self.store.consume(req.intent, f"satisfied: process {req.pid} was already "
                                           f"replaced by pid {o.pid}")
        for it in self.store.active(kinds=("restart_requested",)):
            if it.service not in desired:
                self.store.expire(it.id, f"{it.service} is no longer a desired service")
        p = self._policy()
        self.store.expire_due(float(p["request_ttl_seconds"]))
        now = self.ctx.clock.monotonic()
        if self._pruned_at is None or now - self._pruned_at >= p["prune_interval_seconds"]:
            self._pruned_at = now
            self.store.prune(float(p["keep_days"]))
