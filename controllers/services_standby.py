"""Warm standby instances of a Service (``spec.standby``), run by the services controller.

A Service that serves through the gateway (``spec.traffic``) may declare ``standby:
{instances: N}``: N more instances of the *same revision* kept ready behind the front, so a
crash of the active instance loses no request (the front's load balancer lists them and
Traefik's retry sends a refused request to another server).

Each instance has its own identity: the name ``<service>~standby-<i>``, its own backend port
(assigned once, kept in the store's key-value table so a restarted operator reuses it), its
own process (a separate ProcessSupervisor with the ``standby.*`` event topic, so healing and
the health monitor, which listen to ``service.*``, never take a standby's exit for a service
incident: the owner restarts it itself), its own runtime (crash back-off) and its own
readiness probe (``standby.ready`` / ``standby.not_ready``, which wake the gateway
controller: only ready instances are in the load balancer).

The instances are planned as more entries of the services controller's desired state
(``DesiredService.standby_of`` set), so its one pure diff starts, restarts (per the
restart policy, after the back-off) and stops them with the service (removed, isolated,
survival; a healing pause of a crash-looping active keeps them serving). A new revision
reaches a standby only once the active runs it and is ready, so the two are never replaced
at the same time. During an evolution rollout the standby
follows the Service's desired revision (the stable one); the candidate gets none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from autonomous.core.ports import free_port
from autonomous.core.clock import tick_delay
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.probes import http_probe
from autonomous.supervisor.runtime import ServiceRuntime

__all__ = ["SEP", "assign_ports", "base_of", "instance_name", "instances", "is_standby",
           "standby_probe", "standby_spec"]

SEP = "~standby-"
_KV = "standby_ports"
_FAST = 0.05


def instance_name(service: str, i: int) -> str:
    return f"{service}{SEP}{i}"


def is_standby(name: str) -> bool:
    return SEP in name


def base_of(name: str) -> str:
    return name.split(SEP, 1)[0]


def _substitute(argv: list[str], old: int, new: int) -> list[str]:
    o, n = str(old), str(new)
    out = []
    for a in argv:
        if a == o:
            out.append(n)
        elif a.endswith("=" + o):
            out.append(a[: -len(o)] + n)
        else:
            out.append(a)
    return out


def standby_spec(spec: ServiceSpec, port: int) -> ServiceSpec:
    """(pure) The spec one standby instance runs: the active's, on its own ``port`` (replaced
    in argv — ``8000`` or ``--port=8000`` — and in ``PORT``), with no front of its own."""
    assert spec.port is not None
    env = dict(spec.env)
    if env.get("PORT") == str(spec.port):
        env["PORT"] = str(port)
    return spec.model_copy(update={"port": port, "env": env, "traffic": None, "standby": None,
                                   "command": _substitute(list(spec.command), spec.port, port)})


def assign_ports(store: Any, services: dict[str, ServiceSpec]) -> dict[str, int]:
    """instance name → backend port for every declared standby instance; a port once given
    is kept (store kv ``standby_ports``), a new instance gets a free loopback port that no
    Service declares."""
    known: dict[str, int] = dict(store.kv_get(_KV, {}) or {})
    declared = {s.port for s in services.values() if s.port is not None}
    declared |= {s.traffic.port for s in services.values() if s.traffic is not None}
    out: dict[str, int] = {}
    for name, spec in services.items():
        if spec.standby is None:
            continue
        for i in range(1, spec.standby.instances + 1):
            inst = instance_name(name, i)
            port = known.get(inst)
            if port is None or port in declared:
                port = free_port(spec.host, declared | set(known.values()))
            out[inst] = known[inst] = port
    if out != {k: v for k, v in (store.kv_get(_KV, {}) or {}).items() if k in out}:
        store.kv_set(_KV, known)
    return out


async def standby_probe(ctl: Any, name: str, spec: ServiceSpec, rt: ServiceRuntime,
                        pid: int) -> None:
    """Readiness of one standby instance: fast until first ready, then every period.
    Transitions publish ``standby.ready`` / ``standby.not_ready`` (never ``service.*``)."""
    ctx = ctl.ctx
    health = spec.health
    if health is None or spec.port is None:
        rt.probe.live = rt.probe.ready = True
        rt.ready_event.set()
        ctx.bus.publish("standby.ready", service=name, pid=pid)
        return
    url = f"http://{spec.host}:{spec.port}{health.readiness_path or health.path}"
    try:
        while True:
            res = await http_probe(ctl.client(), url, health.timeout_seconds, ctx.clock.now())
            rt.probe.record_liveness(res, in_grace=rt.probe.live is None and not res.ok)
            transition = rt.probe.record_readiness(res)
            now_m = ctx.clock.monotonic()
            if transition == "ready":
                rt.healthy_since = now_m
                rt.ready_event.set()
                ctx.bus.publish("standby.ready", service=name, pid=pid, port=spec.port)
            elif transition == "not_ready":
                rt.healthy_since = None
                rt.ready_event.clear()
                ctx.bus.publish("standby.not_ready", service=name, pid=pid, error=res.error)
            reset_after = ctx.policy()["supervision"]["healthy_reset_seconds"]
            if rt.healthy_since is not None and now_m - rt.healthy_since >= reset_after \
                    and rt.backoff.failures:
                rt.backoff.record_success()  # proven ready: the crash back-off starts over
            fast = rt.probe.ready is not True
            await ctx.clock.sleep(tick_delay(ctx.clock, min(_FAST, health.period_seconds)
                                             if fast else health.period_seconds))
    except asyncio.CancelledError:
        pass


def instances(ctl: Any, service: str) -> list[dict[str, Any]]:
    """The standby instances of ``service`` as the status and the gateway see them."""
    out = []
    for name, d in sorted(ctl._desired.items()):
        if d.standby_of != service:
            continue
        info = ctl.standbys.get(name)
        rt = ctl.runtimes.get(name)
        running = bool(info and info.running)
        out.append({"instance": name, "port": d.spec.port, "running": running,
                    "pid": info.pid if info and running else None,
                    "ready": bool(rt and running and rt.probe.ready is True),
                    "revision": info.spec_hash if info else None,
                    "restarts": len(rt.restarts) if rt else 0,
                    "crash_count": rt.backoff.failures if rt else 0,
                    "returncode": info.returncode if info else None})
    return out
