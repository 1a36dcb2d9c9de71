"""The gateway controller: owns the one Traefik process and its dynamic configuration.

observe: the Services that declare ``spec.traffic`` (from the desired state in force), whether
Traefik runs and with which static argv, and the dynamic document on disk.
diff (pure): the fronts wanted → ``start`` (Traefik not running, or its entry points changed),
``route`` (the dynamic document differs: its own action kind, since routing follows what
runs and is not held for approval as a software ``update`` is in governed mode), ``stop``
(no front left).
act: start/stop Traefik (argv list, loopback only) or write the document atomically.
Traefik is supervised (``autonomous/gateway/process.py``): an exit the controller did not ask
for publishes ``evolution.gateway.exited``, which wakes this controller (it watches
``evolution.``), whose diff then starts it again.

Each front routes to the Service's own port at weight 100 (the version running now); the
evolution controller's rollout states will add the candidate's backend and weights here
(``autonomous.evolution.staged_rollout.weights``). A Service without ``spec.traffic`` is
served directly, as before. ``ctx.subsystems["gateway"]`` exposes the metrics URL.

The candidate is reached through the rollback gate (``autonomous/gateway/gate.py``), served
by this controller for as long as it runs: open while the evolution controller publishes the
candidate, closed the moment it unpublishes it, so a rollback switches the front back in one
health check, before this controller's own pass rewrites the document. That rewrite (a
reload: 80-120 ms of Traefik's CPU here) waits until Traefik's check has met the closed gate
twice — a whole check interval to act on the first (``switching``; at most ``GATE_WAIT_S``):
started at once, it competed with the switch and doubled its p95.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from autonomous.core.ports import free_port
from autonomous.gateway.config import Backend, Front, dynamic_config, static_args
from autonomous.gateway.gate import Gate
from autonomous.gateway.process import Traefik
from autonomous.intents import Intent, IntentStore
from controllers.base import Action, Controller, Outcome

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["CONTROLLERS", "GatewayController", "GatewayObserved", "fallback_routes",
           "fronts_for"]

DOC = "atlas.yaml"
IN_FORCE_WAIT_S = 3.0  # bound on waiting for Traefik to report a written document live
GATE_WAIT_S = 1.0  # bound on holding a rewrite until Traefik's checks met a closed gate
GATE_RECHECK_S = 0.01  # how soon a held rewrite looks again (the gate is checked every 20 ms)


@dataclass(frozen=True)
class GatewayObserved:
    fronts: tuple[Front, ...]
    running_argv: tuple[str, ...] | None  # None: Traefik not running
    doc_on_disk: str | None
    dyn_dir: str
    metrics_port: int
    # service → (fallback base URL, intent id) for each standing ``fallback`` intent
    fallbacks: dict[str, tuple[str, str]] = field(default_factory=dict)
    gate_port: int | None = None  # the rollback gate's port (None: not serving)
    # fronts whose document in force gates a candidate no longer published, whose closed
    # gate Traefik's checks have not met twice yet: the front is switching back, no reload
    switching: tuple[str, ...] = ()


def fallback_routes(intents: list[Intent], services: dict[str, Any]
                    ) -> dict[str, tuple[str, str]]:
    """service → (base URL, intent id) from the standing ``fallback`` intents (pure). The
    target is a declared Service (its own host:port) or a URL (its scheme://host:port; the
    gateway forwards the request path as it came). An unusable target routes nothing."""
    out: dict[str, tuple[str, str]] = {}
    for it in intents:
        if it.kind != "fallback" or it.service not in services:
            continue
        target = services.get(str(it.params.get("target") or ""))
        if target is not None and target.port is not None:
            out[it.service] = (f"http://{target.host}:{target.port}", it.id)
            continue
        parts = urlsplit(str(it.params.get("url") or it.params.get("target") or ""))
        if parts.scheme in ("http", "https") and parts.netloc:
            out[it.service] = (f"{parts.scheme}://{parts.netloc}", it.id)
    return out


def fronts_for(services: dict[str, Any], rollouts: dict[str, Any] | None = None,
               fallbacks: dict[str, tuple[str, str]] | None = None,
               standbys: dict[str, tuple[int, ...]] | None = None,
               gate_port: int | None = None) -> tuple[Front, ...]:
    """Fronts from the Services; a running rollout's candidate (``version``, ``port``,
    ``weight``, ``device_version``: see controllers/evolution.py) adds its weighted backend;
    a standing fallback (``fallback_routes``) sends the whole front to the fallback;
    ``standbys`` (service → ports of its ready standby instances, from the services
    controller) are more servers of the running version's backend (a candidate gets none);
    with ``gate_port`` the candidate is gated (the rollback gate switches it out)."""
    out = []
    for name, spec in sorted(services.items()):
        if spec.traffic is None or spec.port is None:
            continue
        c = (rollouts or {}).get(name)
        warm = tuple(sorted((standbys or {}).get(name, ())))
        backends: tuple[Backend, ...] = (Backend(spec.version, spec.port, 100, spec.host,
                                                 warm),)
        device = spec.version
        if c is not None and c.version != spec.version:
            backends = (Backend(spec.version, spec.port, 100 - c.weight, spec.host, warm),
                        Backend(c.version, c.port, c.weight, gated=True))
            device = c.device_version or spec.version
        elif c is not None and c.weight == 100:
            # past a rollout's commit point the Service is being switched to the candidate's
            # version: the candidate serves alone until it is retired (never the old process)
            backends = (Backend(c.version, c.port, 100),)
        fb = (fallbacks or {}).get(name)
        out.append(Front(name=name, port=spec.traffic.port, device_version=device,
                         device_paths=tuple(spec.traffic.device_paths), backends=backends,
                         health_path=spec.health.path if spec.health else "/health",
                         fallback_url=fb[0] if fb else None, fallback_active=fb is not None,
                         gate_port=gate_port))
    return tuple(out)


class GatewayController(Controller):
    name = "gateway"
    subsystem = "evolution"
    order = 15
    # intent.*: a fallback intent requested or released switches a front's router
    # standby.*: a standby instance became ready / not ready / exited (load balancer servers)
    watches: tuple[str, ...] = ("desired.", "evolution.", "intent.", "standby.")
    offline_plan = ("the Traefik process it runs, and the ports it gave it, are known only to "
                    "the running operator")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.workdir = ctx.data_dir / "gateway"
        self.metrics_port = 0
        self.traefik: Traefik | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.intents = IntentStore(ctx.store, ctx.clock)
        self.gate = Gate(self.published)
        self._unpublished: dict[tuple[str, int], float] = {}  # gated candidate → since

    def published(self, service: str, port: int) -> bool:
        """The rollback gate's answer: the candidate on ``port`` is still routed to (the
        evolution controller's published candidates, read as they are now)."""
        c = (self.ctx.subsystems.get("rollouts") or {}).get(service)
        return c is not None and c.port == port

    def _switching(self) -> tuple[str, ...]:
        """Fronts switching back through the rollback gate (see ``GatewayObserved``)."""
        t = self.traefik
        now = self.ctx.clock.monotonic()
        out: set[str] = set()
        gone: dict[tuple[str, int], float] = {}
        for f in t.fronts if t is not None else ():
            for b in f.backends:
                key = (f.name, b.port)
                if not b.gated or f.gate_port is None:
                    continue
                if self.published(*key):  # (again): a later rollback is a new switch
                    self.gate.forget(key)
                    continue
                gone[key] = since = self._unpublished.get(key, now)
                if self.gate.closed_checks.get(key, 0) < 2 and now - since < GATE_WAIT_S:
                    out.add(f.name)
        self._unpublished = gone
        return tuple(sorted(out))

    async def start(self) -> None:
        from autonomous.evolution.facade import EvolutionFacade

        self.ctx.subsystems.setdefault("evolution", EvolutionFacade(
            self.ctx.store, self.ctx.clock, self.ctx.desired, self.ctx.root))
        await self.gate.start()

    async def stop(self) -> None:
        await self._stop_traefik()
        await self.gate.stop()

    async def _stop_traefik(self) -> None:
        t, self.traefik = self.traefik, None  # cleared first: the watcher sees a wanted stop
        if t is not None:
            await asyncio.to_thread(t.stop)
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch(self, t: Traefik) -> None:
        code = await asyncio.to_thread(t.wait_exit)
        if self.traefik is t:  # not stopped by us
            self.ctx.bus.publish("evolution.gateway.exited", pid=t.pid, returncode=code)

    async def observe(self) -> GatewayObserved:
        gen = self.ctx.desired.current
        fallbacks = (fallback_routes(self.intents.active(kinds=("fallback",)), gen.services)
                     if gen is not None else {})
        svc = self.ctx.subsystems.get("services")
        standbys = ({n: svc.standby_ports(n) for n, s in gen.services.items()
                     if s.standby is not None}
                    if gen is not None and svc is not None else {})
        gate = self.gate.port or None
        fronts = (fronts_for(gen.services, self.ctx.subsystems.get("rollouts"), fallbacks,
                             standbys, gate) if gen is not None else ())
        if fronts and not self.metrics_port:
            self.metrics_port = free_port()
        t = self.traefik
        running = (tuple(t.argv()[1:]) if t is not None and t.proc is not None
                   and t.proc.poll() is None else None)
        path = self.workdir / "dynamic" / DOC
        doc = path.read_text() if path.exists() else None
        return GatewayObserved(fronts, running, doc, str(self.workdir / "dynamic"),
                               self.metrics_port, fallbacks, gate, self._switching())

    @staticmethod
    def diff(desired: Any, observed: GatewayObserved) -> tuple[Action, ...]:
        fronts = list(observed.fronts)
        if not fronts:
            if observed.running_argv is not None:
                return (Action("stop", "Gateway/traefik", "no Service declares spec.traffic"),)
            return ()
        argv = tuple(static_args(fronts, Path(observed.dyn_dir), observed.metrics_port))
        doc = yaml.safe_dump(dynamic_config(fronts), sort_keys=True)
        names = [f.name for f in fronts]
        if observed.running_argv != argv:
            why = ("not running" if observed.running_argv is None
                   else "entry points changed")
            return (Action("start", "Gateway/traefik", f"gateway {why}; fronts {names}",
                           params={"fronts": names}),)
        if observed.doc_on_disk != doc and observed.switching:
            return ()  # the reload waits until Traefik's check has met the closed gate
        if observed.doc_on_disk != doc:
            fb = {n: {"url": u, "intent": i} for n, (u, i) in sorted(observed.fallbacks.items())}
            why = "".join(f"; fallback {n} -> {v['url']}" for n, v in fb.items())
            return (Action("route", "Gateway/traefik", f"dynamic configuration differs; "
                           f"fronts {names}{why}", params={"fronts": names, "fallback": fb}),)
        return ()

    @staticmethod
    def requeue_after(_desired: Any, observed: GatewayObserved) -> float | None:
        return GATE_RECHECK_S if observed.switching else None

    async def act(self, action: Action) -> Outcome:
        obs = await self.observe()
        try:
            if action.kind == "stop":
                await self._stop_traefik()
                return Outcome(action, True, "gateway stopped")
            if action.kind == "start":
                await self._stop_traefik()
                t = Traefik(list(obs.fronts), self.workdir, obs.metrics_port)
                await asyncio.to_thread(t.start)
                self.traefik = t
                self._watcher = asyncio.create_task(self._watch(t), name="gateway-watch")
                self.ctx.subsystems["gateway"] = t
                return Outcome(action, True, f"gateway serving {len(obs.fronts)} front(s)")
            if action.kind == "route" and self.traefik is not None:
                t = self.traefik
                await asyncio.to_thread(t.configure, list(obs.fronts))
                # written is not in force: Traefik applies it after its reload throttle
                took = await asyncio.to_thread(t.wait_in_force, IN_FORCE_WAIT_S)
                return Outcome(action, True, "dynamic configuration written; " + (
                    f"in force after {took * 1e3:.0f} ms" if took is not None else
                    f"not in force within {IN_FORCE_WAIT_S:.0f} s (Traefik's API)"))
        except (OSError, RuntimeError) as e:
            return Outcome(action, False, f"{action.kind} failed: {e}")
        return Outcome(action, False, f"cannot {action.kind}: gateway not running")


CONTROLLERS = [GatewayController]
