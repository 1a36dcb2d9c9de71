"""Status of each Service: sync (runs what the generation says?) apart from health."""

from __future__ import annotations

from typing import Any

from autonomous.core.conditions import HealthStatus, SyncStatus

__all__ = ["report"]


def report(ctl: Any, desired: dict, observed: dict, outcomes: list) -> None:
    ctx = ctl.ctx
    now = ctx.clock.now()
    gen = ctx.desired.current
    for name, d in desired.items():
        if d.standby_of is not None:  # shown under its Service (details.instances)
            continue
        st = ctx.status.resource("services", "Service", name)
        o = observed.get(name)
        rt = ctl.runtimes.get(name)
        info = ctl.supervisor.get(name)
        st.observed_generation = gen.number if gen else None
        running = bool(o and o.running)
        if d.rolled_back:
            st.sync = SyncStatus.OUT_OF_SYNC
            st.set_condition("Synced", False, "RolledBack", f"running last known-good revision "
                             f"{d.hash}; the desired revision is blocked until the desired "
                             "state changes or a human clears the block", now)
        elif not d.should_run:
            in_sync = not running
            st.sync = SyncStatus.SYNCED if in_sync else SyncStatus.OUT_OF_SYNC
            st.set_condition("Synced", in_sync, "Stopped" if in_sync else "Stopping",
                             f"kept stopped: {d.why_not}", now)
        elif running and o is not None and o.hash == d.hash:
            st.sync = SyncStatus.SYNCED
            st.set_condition("Synced", True, "Running", f"revision {d.hash} running", now)
        else:
            st.sync = SyncStatus.OUT_OF_SYNC
            reason = "NotRunning" if not running else "RevisionChanged"
            st.set_condition("Synced", False, reason,
                             f"desired revision {d.hash}, running {o.hash if o else None}", now)
        st.health = _health(d, o, rt)
        live = rt.probe.live if rt and running else None
        ready = rt.probe.ready if rt and running else None
        last = rt.probe.last if rt else None
        st.set_condition("Live", live, "ProbePassing" if live else "ProbeFailing" if live is False
                         else "NoProbeYet", (last.error or "ok") if last else "not probed", now)
        st.set_condition("Ready", ready, "Ready" if ready else "NotReady",
                         "readiness probe" if ready is not None else "not probed yet", now)
        if o and o.restart_wait > 0:
            st.set_condition("BackOff", True, "CrashLoopBackOff",
                             f"restart in {o.restart_wait:.1f}s after {rt.backoff.failures} "
                             "crash(es)" if rt else "", now)
        elif "BackOff" in st.conditions:
            st.set_condition("BackOff", False, "NoBackOff", "", now)
        st.details = {
            "pid": info.pid if info and info.running else None,
            "returncode": info.returncode if info else None,
            "restarts": len(rt.restarts) if rt else 0,
            "crash_count": rt.backoff.failures if rt else 0,
            "revision": d.hash, "version": d.spec.version, "core": d.spec.core,
            "log": str(ctl.supervisor.log_path(name)),
        }
        if d.spec.standby is not None:
            from controllers.services_standby import instances

            st.details["instances"] = [
                {"instance": name, "role": "active", "port": d.spec.port,
                 "running": running, "pid": st.details["pid"], "ready": ready is True,
                 "restarts": st.details["restarts"]},
                *({"role": "standby", **i} for i in instances(ctl, name))]
    for key in list(ctx.status.controller("services").resources):
        if key.split("/", 1)[1] not in desired:
            ctx.status.drop_resource("services", key)


def _health(d: Any, o: Any, rt: Any) -> HealthStatus:
    if not d.should_run:
        return HealthStatus.SUSPENDED
    if o is None or not o.running:
        return HealthStatus.MISSING if not (o and o.restart_wait > 0) else HealthStatus.DEGRADED
    if rt is None or rt.probe.live is None:
        return HealthStatus.PROGRESSING
    if rt.probe.live is False:
        return HealthStatus.DEGRADED
    if rt.probe.ready is not True:
        return HealthStatus.PROGRESSING
    return HealthStatus.HEALTHY
