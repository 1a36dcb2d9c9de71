"""The services controller: keeps the declared Services running.

observe: the process table, probe state, crash back-off timers.
diff (pure): start what should run and is not (dependencies first: a service starts only when
everything it ``depends_on`` runs and is ready), restart what exited (per restart policy, after
the crash back-off) or whose command/env/version changed (a healthy one only once the new
revision proved itself beside it: ``controllers/services_rollout.py``), stop what was removed,
isolated, paused or is non-core in survival mode.
act: real processes through ProcessSupervisor. Exits are events: a killed child is restarted
the moment its exit is seen, not on the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.core.backoff import Backoff, BackoffSpec
from autonomous.core.events import Subscription
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.order import topo_order
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.supervisor.probes import ProbeState
from autonomous.supervisor.processes import ProcessSupervisor
from autonomous.supervisor.revisions import Revisions
from autonomous.supervisor.runtime import ServiceRuntime
from autonomous.self_healing.heartbeat_agent import heartbeat_token
from autonomous.context import OperatorContext
from controllers.base import Action, Controller, Outcome
from controllers.removal import REMOVED_REASON, mark_core_removed, removal_kind
from controllers.services_facade import ServicesFacade
from controllers.services_intents import RestartRequest, ServiceIntents, requested_restart
from controllers.services_standby import (assign_ports, instance_name, is_standby,
                                          standby_probe, standby_spec)

__all__ = [
    "CONTROLLERS",
    "DesiredService",
    "ObservedService",
    "ServicesController",
    "topo_order",
]

log = logging.getLogger("atlas.controllers.services")


@dataclass(frozen=True)
class DesiredService:
    name: str
    spec: ServiceSpec
    hash: str
    should_run: bool = True
    why_not: str | None = None  # isolated | paused | survival
    rolled_back: bool = False
    restart: RestartRequest | None = None  # an active restart_requested intent
    standby_of: str | None = None  # a warm standby instance of this Service


@dataclass(frozen=True)
class ObservedService:
    name: str
    running: bool
    ever_started: bool
    hash: str | None = None
    returncode: int | None = None
    stopped_by_us: bool = False
    ready: bool | None = None
    restart_wait: float = 0.0  # seconds left of the crash back-off
    core: bool = False  # removed from the desired state while its revision was core
    pid: int | None = None


def _runs_ready(o: ObservedService | None, spec_hash: str) -> bool:
    """(pure) ``o`` runs revision ``spec_hash`` and is ready: only then does a standby move
    to that revision, so the active and its standby are never replaced at the same time."""
    return o is not None and o.running and o.ready is True and o.hash == spec_hash


class ServicesController(Controller):
    name = "services"
    subsystem = "services"
    order = 10
    watches = ("service.exited", "service.ready", "service.healthy", "survival.",
               "services.override", "intent.", "standby.exited")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.supervisor = ProcessSupervisor(ctx.store, ctx.bus, ctx.clock, ctx.data_dir / "logs")
        # new revisions proved beside the running process (controllers/services_rollout.py)
        self.candidates = ProcessSupervisor(ctx.store, ctx.bus, ctx.clock,
                                            ctx.data_dir / "logs" / "revisions", topic="candidate")
        # warm standby instances (controllers/services_standby.py): their own event topic,
        # so healing never takes a standby's exit for a service incident
        self.standbys = ProcessSupervisor(ctx.store, ctx.bus, ctx.clock,
                                          ctx.data_dir / "logs" / "standby", topic="standby")
        self.revisions = Revisions(ctx.store, ctx.clock)
        self.intents = ServiceIntents(ctx)  # what others ask of these processes
        self.runtimes: dict[str, ServiceRuntime] = {}
        self._desired: dict[str, DesiredService] = {}
        self._client: ProbeClient | None = None
        self._started = False
        self._exit_sub: Subscription | None = None
        self._exit_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        reaped = self.supervisor.reap_stale()
        if reaped:
            log.warning("reaped %d process(es) left by a previous operator: %s", len(reaped),
                        reaped)
        self._started = True
        self.ctx.subsystems["supervisor"] = self.supervisor
        self.ctx.subsystems["services"] = ServicesFacade(self)
        self._exit_sub = self.ctx.bus.subscribe("service.exited", "standby.exited")
        self._exit_task = asyncio.create_task(self._on_exits(), name="services-exits")

    async def stop(self) -> None:
        if self._exit_task:
            self._exit_task.cancel()
        for rt in self.runtimes.values():
            if rt.probe_task:
                rt.probe_task.cancel()
        specs = {n: d.spec for n, d in self._desired.items()}
        order = list(reversed(topo_order(specs)))
        grace = {n: s.stop_grace_seconds for n, s in specs.items()}
        await self.standbys.stop_all(grace)
        await self.supervisor.stop_all(grace, order)
        await self.candidates.stop_all({})
        if self._client:
            await self._client.aclose()

    def client(self) -> ProbeClient:
        """The probe client, built on first use so that it is traced when telemetry runs
        (lean keep-alive GETs; sampled or in-trace probes go through the traced httpx
        client)."""
        if self._client is None:
            hub = self.ctx.subsystems.get("telemetry")
            if hub is not None:
                from autonomous.telemetry.httpx_hooks import traced_client

                ratio = hub.settings.tracing.probe_sample_ratio
                self._client = ProbeClient(lambda: traced_client(hub.tracing, trust_env=False),
                                           hub.tracing, root_ratio=ratio)
            else:
                self._client = ProbeClient()
        return self._client

    async def _on_exits(self) -> None:
        assert self._exit_sub is not None
        while True:
            ev = await self._exit_sub.get()
            rt = self.runtimes.get(ev.data["service"])
            if rt is not None:
                rt.on_exit(self.ctx.clock.monotonic(), unexpected=not ev.data.get("expected"))

    # -- desired -----------------------------------------------------------------------------
    def desired(self) -> dict[str, DesiredService]:
        gen = self.ctx.desired.current
        if gen is None:
            return {}
        survival = self.ctx.store.kv_get("survival", {}) or {}
        overrides = {r["service"]: r for r in self.ctx.store.query(
            "SELECT service, isolated, paused FROM service_overrides")}
        out: dict[str, DesiredService] = {}
        ports: dict[str, int] | None = None
        for name in topo_order(gen.services):
            spec = gen.services[name]
            h = self.revisions.record(name, spec, gen.number)
            intent_why, restart = self.intents.for_service(name, h, self.revisions)
            rolled_back = False
            if self.revisions.is_blocked(name, h):
                good = self.revisions.last_good(name, exclude=h)
                if good is not None:
                    h, spec = good
                    rolled_back = True
            why = None
            ov = overrides.get(name)
            if ov is not None and ov["isolated"]:
                why = "isolated"
            elif ov is not None and ov["paused"]:
                why = "paused"
            elif survival.get("active") and not spec.core and \
                    name not in survival.get("kept_services", []):
                why = "survival"
            # a healing pause intent (a crash-looping active held back) keeps the warm
            # standby serving: that is what it is for; isolation, a human pause and survival
            # stop it with the service
            sb_why = why
            why = why or intent_why
            out[name] = DesiredService(name, spec, h, why is None, why, rolled_back, restart)
            if spec.standby is not None:
                sb_why = sb_why or (intent_why if intent_why != "paused" else None)
                ports = ports if ports is not None else assign_ports(self.ctx.store,
                                                                     gen.services)
                for i in range(1, spec.standby.instances + 1):
                    inst = instance_name(name, i)
                    # the same revision as the active (follows its desired revision)
                    out[inst] = DesiredService(inst, standby_spec(spec, ports[inst]), h,
                                               sb_why is None, sb_why, rolled_back, None,
                                               name)
        self._desired = out
        return out

    # -- observe -----------------------------------------------------------------------------
    async def observe(self) -> dict[str, ObservedService]:
        now = self.ctx.clock.monotonic()
        out: dict[str, ObservedService] = {}
        if not self._started:  # not started (plan): what the store says is running
            for row in self.supervisor.recorded():
                out[row["service"]] = ObservedService(row["service"], True, True,
                                                      row["spec_hash"], None, False, True)
            mark_core_removed(self.ctx.store, out, self._desired)
            return out
        for name, info in [*self.supervisor.procs.items(), *self.standbys.procs.items()]:
            rt = self.runtimes.get(name)
            wait = 0.0
            if rt is not None and rt.restart_at is not None and not info.running:
                wait = max(0.0, rt.restart_at - now)
            ready = (rt.probe.ready if rt else None) if info.running else False
            out[name] = ObservedService(name, info.running, True, info.spec_hash,
                                        info.returncode, info.stopping, ready, wait,
                                        pid=info.pid)
        mark_core_removed(self.ctx.store, out, self._desired)
        return out

    # -- diff (pure) -------------------------------------------------------------------------
    @staticmethod
    def diff(desired: dict[str, DesiredService],
             observed: dict[str, ObservedService]) -> tuple[Action, ...]:
        actions: list[Action] = []
        for name, d in desired.items():
            o = observed.get(name)
            res = f"Service/{name}"
            params = {"service": name, "spec_hash": d.hash}
            if not d.should_run:
                if o is not None and o.running:
                    actions.append(Action("stop", res, f"service is {d.why_not}", params))
                continue
            deps = [observed.get(x) for x in d.spec.depends_on]
            deps_ok = all(x is not None and x.running and x.ready for x in deps)
            waiting = [x for x, ob in zip(d.spec.depends_on, deps)
                       if ob is None or not ob.running or not ob.ready]
            if o is None or not o.ever_started:
                if deps_ok:
                    actions.append(Action("start", res, "declared and not running", params))
                continue
            if o.running:
                if o.hash != d.hash and d.standby_of is not None and \
                        not _runs_ready(observed.get(d.standby_of), d.hash):
                    continue  # a standby follows once the active serves the new revision
                if o.hash != d.hash:
                    why = ("rolled back to the last known-good revision" if d.rolled_back else
                           "command/env/version changed in the desired state")
                    actions.append(Action("restart", res, why, params,
                                          {"running_hash": o.hash, "desired_hash": d.hash}))
                elif (req := requested_restart(d, o)) is not None:
                    actions.append(req)
                continue
            if not o.stopped_by_us:
                policy = d.spec.restart.policy
                if policy == "never" or (policy == "on-failure" and o.returncode == 0):
                    if (req := requested_restart(d, o)) is not None:
                        actions.append(req)
                    continue
                if o.restart_wait > 0 and o.hash == d.hash:
                    continue
            if not deps_ok:
                continue
            reason = (f"process exited with code {o.returncode}, restart policy "
                      f"{d.spec.restart.policy}" if not o.stopped_by_us else "should run again")
            evidence = {"returncode": o.returncode, "waiting_for": waiting}
            actions.append(Action("restart" if not o.stopped_by_us else "start", res, reason,
                                  params, evidence))
        for name, o in observed.items():
            if name not in desired and o.running:
                actions.append(Action(removal_kind(o), f"Service/{name}", REMOVED_REASON,
                                      {"service": name, "spec_hash": o.hash}))
        return tuple(actions)

    @staticmethod
    def requeue_after(desired: dict[str, DesiredService],
                      observed: dict[str, ObservedService]) -> float | None:
        waits = [o.restart_wait for n, o in observed.items()
                 if o.restart_wait > 0 and n in desired and desired[n].should_run]
        return min(waits) if waits else None

    # -- act ---------------------------------------------------------------------------------
    async def act(self, action: Action) -> Outcome:
        name = action.params["service"]
        if action.kind in ("stop", "stop_by_removal"):
            code = await self._stop(name)
            return Outcome(action, True, f"stopped (exit code {code})")
        d = self._desired.get(name)
        if d is None:
            return Outcome(action, False, f"service {name!r} is no longer desired", permanent=True)
        if d.standby_of is not None:
            if self.revisions.is_blocked(d.standby_of, d.hash):
                return Outcome(action, False, f"revision {d.hash[:12]} of {d.standby_of} is "
                               "refused; the standby waits for the next desired state")
            if action.kind == "restart":
                await self._stop(name)
        elif action.kind == "restart":
            from controllers.services_rollout import prove_or_refuse

            refused = await prove_or_refuse(self, d, action, *self._launch(d))
            if refused is not None:
                return refused
            await self._stop(name)
        info = await self._start(d)
        outcome = Outcome(action, True, f"started pid {info.pid}", details={"pid": info.pid})
        self.intents.acted(action, outcome)
        return outcome

    def _launch(self, d: DesiredService) -> tuple[dict[str, str], Path]:
        """The environment and working directory a revision runs with."""
        cwd = (self.ctx.root / d.spec.cwd) if d.spec.cwd else self.ctx.root
        env = dict(d.spec.env)
        if d.spec.port:
            env.setdefault("PORT", str(d.spec.port))
        env.setdefault("ATLAS_SERVICE_VERSION", d.spec.version)
        if d.standby_of is not None:
            # a standby is not the service: no heartbeat agent beating in the active's name
            # (it would mask a hung active); its owner probes its readiness instead
            env["ATLAS_AUTONOMOUS_URL"] = ""
            return env, Path(cwd)
        # opens only this service's heartbeat route (autonomous.self_healing.heartbeat_agent)
        env.setdefault("ATLAS_HEARTBEAT_TOKEN", heartbeat_token(self.ctx.token, d.name))
        return env, Path(cwd)

    def _sup(self, name: str) -> ProcessSupervisor:
        return self.standbys if is_standby(name) else self.supervisor

    async def _start(self, d: DesiredService) -> Any:
        rt = self._runtime(d.name)
        env, cwd = self._launch(d)
        info = await self._sup(d.name).start(d.name, list(d.spec.command), cwd=cwd, env=env,
                                             spec_hash=d.hash)
        now = self.ctx.clock.monotonic()
        if rt.started_mono is not None:
            rt.restarts.append(now)
        rt.on_start(now)
        if rt.probe_task:
            rt.probe_task.cancel()
        probe = (standby_probe(self, d.name, d.spec, rt, info.pid) if d.standby_of
                 else self._probe_loop(d, rt, info.pid))
        rt.probe_task = asyncio.create_task(probe, name=f"probe-{d.name}")
        return info

    async def _stop(self, name: str) -> int | None:
        rt = self.runtimes.get(name)
        if rt and rt.probe_task:
            rt.probe_task.cancel()
            rt.probe_task = None
        d = self._desired.get(name)
        grace = d.spec.stop_grace_seconds if d else 5.0
        return await self._sup(name).stop(name, grace)

    def _runtime(self, name: str) -> ServiceRuntime:
        if name not in self.runtimes:
            sup = self.ctx.policy()["supervision"]
            d = self._desired.get(name)
            spec = d.spec if d is not None else None
            h = spec.health if spec else None
            self.runtimes[name] = ServiceRuntime(
                name, ProbeState(h.failure_threshold if h else 3, h.success_threshold if h else 1),
                Backoff(BackoffSpec.from_policy(sup["restart_backoff"])))
        return self.runtimes[name]

    # -- probes ------------------------------------------------------------------------------
    async def _probe_loop(self, d: DesiredService, rt: ServiceRuntime, pid: int) -> None:
        from controllers.services_probe import probe_loop

        await probe_loop(self, d, rt, pid)

    # -- status ------------------------------------------------------------------------------
    def report(self, desired: dict[str, DesiredService], observed: dict[str, ObservedService],
               outcomes: list[Outcome]) -> None:
        from controllers.services_status import report

        self.intents.settle(desired, observed)
        report(self, desired, observed, outcomes)


CONTROLLERS = [ServicesController]
