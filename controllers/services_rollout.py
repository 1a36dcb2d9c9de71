"""A new revision of a healthy service is proved before the running process is stopped
(issue 17.6: a broken but valid command used to replace a healthy process at once).

With ``supervision.rollout.max_unavailable: 0`` a ``restart`` for a changed revision
(command/env/version/port) of a running, ready service first starts the new revision *beside*
the old one, as a candidate process with its own event topic (``candidate.*``: nothing takes it
for a service):

* on the new port when the edit moved the service to a free one, or with no port at all;
* on a spare port when it keeps the same port and that port is in its argv (``--port 8000``,
  ``--port=8000``) — the port is substituted there and in ``PORT`` (SO_REUSEPORT is not
  assumed, so the two never share a port).

The candidate must pass the readiness probe (or, with nothing to probe, keep running for
``settle_seconds``) within ``ready_timeout_seconds``; it is then stopped and the service is
restarted on the new revision (stop, then start: the outage is one start, not the broken
revision's). A candidate that exits, fails or times out is stopped, the new revision is
**refused**: blocked (like ROLLBACK: until the spec changes again or a human clears it) with
the running revision marked known-good, so the old process keeps serving and is what a later
crash restarts. A revision that cannot run beside the old one (same port, not in its argv) is
refused too. ``max_unavailable: 1`` keeps stop-then-start. A known-good revision (a rollback)
and a service that is not healthy right now are replaced at once: there is nothing to protect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.core.ports import free_port, port_free
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.supervisor.probes import http_probe
from autonomous.supervisor.processes import ProcessSupervisor
from controllers.base import Action, Outcome

__all__ = ["Beside", "beside", "prove_or_refuse"]

_POLL = 0.05


@dataclass(frozen=True)
class Beside:
    """How a candidate runs beside the old process: argv, env and the port it listens on."""

    argv: list[str]
    env: dict[str, str]
    port: int | None


def _substitute(argv: list[str], old: int, new: int) -> list[str] | None:
    """argv with the port replaced (a token ``8000`` or ``--x=8000``); None if absent."""
    o, n = str(old), str(new)
    out, hit = [], False
    for a in argv:
        if a == o:
            out.append(n)
            hit = True
        elif a.endswith("=" + o):
            out.append(a[: -len(o)] + n)
            hit = True
        else:
            out.append(a)
    return out if hit else None


def beside(spec: ServiceSpec, env: dict[str, str], running_port: int | None,
           spare_port: int, port_free: bool) -> Beside | str:
    """(pure) How the new revision ``spec`` can run beside a process listening on
    ``running_port``, or why it cannot. ``env``: the environment it would get; ``spare_port``
    a free port to use when it keeps the same port; ``port_free``: its own port is free."""
    argv = list(spec.command)
    if spec.port is None:
        return Beside(argv, env, None)
    if spec.port != running_port:
        if port_free:
            return Beside(argv, env, spec.port)
        return f"its port {spec.port} is in use"
    moved = _substitute(argv, spec.port, spare_port)
    if moved is None:
        return (f"it keeps port {spec.port}, which the running process holds, and the port "
                "is not in its argv to be moved to a spare one")
    new_env = dict(env)
    if new_env.get("PORT") == str(spec.port):
        new_env["PORT"] = str(spare_port)
    return Beside(moved, new_env, spare_port)


async def prove_or_refuse(ctl: Any, d: Any, action: Action, env: dict[str, str],
                          cwd: Path) -> Outcome | None:
    """None: go on and replace the running process. An Outcome: the new revision was refused
    and the running process kept (the reason, the candidate's log)."""
    name = d.name
    info = ctl.supervisor.get(name)
    rt = ctl.runtimes.get(name)
    if info is None or not info.running or rt is None or rt.probe.ready is not True:
        return None  # nothing healthy to keep
    if info.spec_hash == d.hash or ctl.revisions.is_good(name, d.hash):
        return None  # the same revision, or one already proved (a rollback)
    pol = ctl.ctx.policy()["supervision"]["rollout"]
    if pol["max_unavailable"] >= 1:
        return None
    old = ctl.revisions.spec_of(name, info.spec_hash)
    spec = d.spec
    plan = beside(spec, env, old.port if old else spec.port, free_port(spec.host),
                  spec.port is None or port_free(spec.host, spec.port))
    if isinstance(plan, str):
        return _refuse(ctl, d, action, info, f"cannot run beside the running process: {plan}; "
                       "set supervision.rollout.max_unavailable: 1 to allow stop-then-start")
    sup = ctl.candidates
    cand = f"{name}@{d.hash[:8]}"
    try:
        proc = await sup.start(cand, plan.argv, cwd=cwd, env=plan.env, spec_hash=d.hash)
    except OSError as exc:  # no such program, not executable, no such cwd
        return _refuse(ctl, d, action, info, f"the new revision could not start: {exc}")
    try:
        why = await _ready(ctl, sup, cand, spec, plan.port, pol)
    finally:
        await sup.stop(cand, spec.stop_grace_seconds)
    if why is None:
        return None
    return _refuse(ctl, d, action, info, f"the new revision (pid {proc.pid}"
                   f"{f', port {plan.port}' if plan.port else ''}) {why}; its output: "
                   f"{sup.log_path(cand)}")


async def _ready(ctl: Any, sup: ProcessSupervisor, cand: str, spec: ServiceSpec,
                 port: int | None, pol: dict[str, Any]) -> str | None:
    """None once the candidate is ready, else why it is not."""
    clock = ctl.ctx.clock
    t0 = clock.monotonic()
    health = spec.health
    probe = port is not None and health is not None
    url = f"http://{spec.host}:{port}{(health.readiness_path or health.path)}" if probe \
        and health is not None else ""
    last = "no answer"
    while True:
        info = sup.get(cand)
        if info is None or not info.running:
            return f"exited with code {info.returncode if info else None} before it was ready"
        waited = clock.monotonic() - t0
        if probe and health is not None:
            res = await http_probe(ctl.client(), url, health.timeout_seconds, clock.now())
            if res.ok:
                return None
            last = res.error or "not ready"
        elif waited >= pol["settle_seconds"]:
            return None
        if waited >= pol["ready_timeout_seconds"]:
            return (f"was not ready within {pol['ready_timeout_seconds']:g}s (last probe: "
                    f"{last})")
        await clock.sleep(_POLL)


def _refuse(ctl: Any, d: Any, action: Action, info: Any, why: str) -> Outcome:
    """Block the new revision; the running one (marked known-good) stays desired."""
    ctl.revisions.mark_good(d.name, info.spec_hash)
    ctl.revisions.block(d.name, d.hash)
    ctl.ctx.bus.publish("services.override", service=d.name, refused=d.hash,
                        kept=info.spec_hash)
    return Outcome(action, False, f"new revision {d.hash[:12]} refused, pid {info.pid} "
                   f"(revision {info.spec_hash[:12]}) kept running: {why}; the revision stays "
                   "blocked until the spec changes again",
                   details={"refused": d.hash, "kept": info.spec_hash, "pid": info.pid})
