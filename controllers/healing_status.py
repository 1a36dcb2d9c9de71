"""The healing controller's report: per Service its sync and health as healing sees them and
its conditions (CrashLoopBackOff, Isolated, Degraded, FallbackActive, HealingBreakerOpen), and
each open incident as ``Incident/<id>`` (a closed one leaves the board)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.conditions import HealthStatus, SyncStatus
from controllers.healing_diff import HealingObserved

__all__ = ["report"]


def report(ctx: OperatorContext, observed: HealingObserved) -> None:
    """Conditions per Service the engine holds state for, and the incident board."""
    now = ctx.clock.now()
    for name, sv in observed.services.items():
        o = sv.status
        if not o:
            continue
        st = ctx.status.resource("healing", "Service", name)
        st.set_condition("CrashLoopBackOff", o["phase"] == "backoff",
                         "BackOff" if o["phase"] == "backoff" else "NoBackOff",
                         o["reason"], now)
        st.set_condition("Isolated", o["phase"] == "isolated", "Isolated"
                         if o["phase"] == "isolated" else "NotIsolated", o["reason"], now)
        st.set_condition("Degraded", o["degraded"], "FeaturesOff" if o["degraded"]
                         else "FullService", "", now)
        st.set_condition("FallbackActive", o["fallback_active"], "Fallback"
                         if o["fallback_active"] else "Direct", "", now)
        st.set_condition("HealingBreakerOpen", o["heal_breaker"] != "CLOSED",
                         o["heal_breaker"], "", now)
        st.sync, st.health = _summary(o)
        st.details = dict(o)
    _incidents(ctx, observed, now)


def _summary(o: Mapping[str, Any]) -> tuple[SyncStatus, HealthStatus]:
    """Healing's own view of a Service: Synced when it has nothing to do for it (no incident
    open, no try or back-off under way); Suspended while isolated or paused by a human,
    Progressing while it remediates, Degraded while a feature is off, a fallback serves or
    its healing breaker is open, else Healthy."""
    busy = o["phase"] != "normal" or bool(o["busy"] or o["open_incident"] or o["trying"])
    sync = SyncStatus.OUT_OF_SYNC if busy else SyncStatus.SYNCED
    if o["phase"] == "isolated" or o["paused_by_human"]:
        return sync, HealthStatus.SUSPENDED
    if busy:
        return sync, HealthStatus.PROGRESSING
    if o["degraded"] or o["fallback_active"] or o["heal_breaker"] != "CLOSED":
        return sync, HealthStatus.DEGRADED
    return sync, HealthStatus.HEALTHY


def _incidents(ctx: OperatorContext, observed: HealingObserved, now: float) -> None:
    """Each open incident is a resource with status (``Incident/<id>``); a closed one
    leaves the board."""
    for iid, iv in sorted(observed.incidents.items()):
        st = ctx.status.resource("healing", "Incident", iid)
        waiting = iv.state == "awaiting_approval"
        st.set_condition("AwaitingApproval", waiting, "Pending" if waiting else "NotGated",
                         f"{iv.strategy} awaits approval {iv.approval} "
                         f"({iv.approval_state})"
                         f"{'; its service is kept stopped meanwhile' if iv.held else ''}"
                         if waiting else "", now)
        st.set_condition("CrashLoopBackOff", iv.state == "backoff", "BackOff"
                         if iv.state == "backoff" else "NoBackOff", "", now)
        st.details = {"service": iv.service, "state": iv.state, "step": iv.step,
                      "strategy": iv.strategy, "approval": iv.approval,
                      "approval_state": iv.approval_state, "held": iv.held}
    run = ctx.status.controller("healing")
    for key in [k for k in run.resources if k.startswith("Incident/")]:
        if key.split("/", 1)[1] not in observed.incidents:
            ctx.status.drop_resource("healing", key)
